//! Step 2b of a pass: a stand-in for Karpenter and for EKS Auto Mode's node provisioning,
//! minimal and as their docs describe it.
//!
//! - **What it reads.** The `NodePool`s (`karpenter.sh/v1`), the `EC2NodeClass`es
//!   (`karpenter.k8s.aws/v1`) and Auto Mode's `NodeClass`es (`eks.amazonaws.com/v1`) of the
//!   API server, and its pods. A pod is provisionable as Karpenter judges it (karpenter
//!   `pkg/utils/pod/scheduling.go`, `IsProvisionable`): not bound, not being deleted, not a
//!   DaemonSet's, and marked by kube-scheduler `PodScheduled` False, reason `Unschedulable`
//!   (which the scheduler stand-in in `pods.rs` writes).
//! - **Which pool.** A pod goes to the first pool, by `spec.weight` (highest first, then
//!   name; `docs/concepts/nodepools.md`, "spec.weight"), whose nodes would carry every label
//!   of its `nodeSelector`: the pool's `template.metadata.labels`, `karpenter.sh/nodepool`,
//!   and the labels Karpenter and Auto Mode put on their nodes (`docs/concepts/scheduling.md`,
//!   "Well-Known Labels"; EKS user guide `automode/create-node-pool.adoc`, "EKS Auto Mode
//!   supported labels"). A pool is used only when its `nodeClassRef` names a class that
//!   exists, and an Auto Mode pool only on a cluster whose `computeConfig.enabled` is true.
//! - **Which cluster.** The API server stands for one cluster, whose name Karpenter is
//!   given in its settings (`settings.clusterName`); here it is the serving cluster of the
//!   VPC of the class's subnets (by name, the first if there are several).
//! - **What it launches.** The pool's instance types come from its requirement
//!   `node.kubernetes.io/instance-type In [...]`; the smallest one EC2 knows (fewest vCPUs,
//!   then the order written) is launched, into the class's `subnetSelectorTerms` (`id`
//!   terms) spread over their zones (the zone with fewest of the pool's instances first),
//!   with the class's security groups (none: the cluster security group). As many nodes as
//!   the provisionable pods need beyond the room left on the pool's nodes (launched and not
//!   yet joined included), each holding max pods less the DaemonSet pods it will run
//!   (Karpenter counts that overhead: `pkg/controllers/provisioning/scheduling`), and no
//!   more than `spec.limits.nodes` live instances of the pool (`docs/concepts/nodepools.md`,
//!   "spec.limits").
//! - **Karpenter's instances** (an `EC2NodeClass`) are tagged as Karpenter tags them
//!   (`docs/concepts/nodeclasses.md`, "spec.tags": `karpenter.sh/nodepool`,
//!   `karpenter.k8s.aws/ec2nodeclass`, `kubernetes.io/cluster/<cluster>=owned`,
//!   `eks:eks-cluster-name`; the last one since v1, `designs/v1-api.md`), and get the AL2023
//!   user data Karpenter renders (`pkg/providers/amifamily/bootstrap/nodeadm.go`): a MIME
//!   multi-part document with one NodeConfig whose `kubelet.config.maxPods` is the class's
//!   `spec.kubelet.maxPods`, else Karpenter's own count (`pkg/providers/instancetype/types.go`,
//!   `ENILimitedPods`: `(ENIs − RESERVED_ENIS) × (IPv4 per ENI − 1) + 2` with RESERVED_ENIS
//!   at its default 0, no cap, not prefix-delegation aware), and the node's labels as the
//!   kubelet's `--node-labels`. The Node's max pods then come from the user data, as for any
//!   self-managed node (`max_pods.rs`).
//! - **Auto Mode's instances** (a `NodeClass`) are tagged `eks:eks-cluster-name`,
//!   `eks:kubernetes-node-class-name`, `eks:kubernetes-node-pool-name` (EKS user guide,
//!   `automode/auto-learn-iam.adoc`: the tag conditions of AmazonEKSComputePolicy) and join
//!   their cluster by the first; their max pods is `auto_mode::max_pods`.
//! - **A pool that is gone** (listed without it): its instances are drained and terminated,
//!   as Karpenter does with the NodeClaims of a deleted NodePool (`docs/concepts/nodepools.md`:
//!   deleting a NodePool deletes its nodes).
//!
//! Not done: NodeClaim objects, consolidation, drift, expiry, spot, taints, requirements
//! other than the instance types, selector terms other than `id`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::ec2::{Ec2, Instance, InstanceType, Launch};
use super::eks::Cluster;
use super::objects::{name_of, node_name_of, owned_by_daemonset};
use super::{alive, DataPlane, KubeSide, Observed, CLUSTER_TAG_PREFIX, EKS_AMI};
use crate::core::emulator::Pass;
use crate::shared::lock;

pub const NODE_POOLS: &str = "/apis/karpenter.sh/v1/nodepools";
pub const EC2_NODE_CLASSES: &str = "/apis/karpenter.k8s.aws/v1/ec2nodeclasses";
pub const NODE_CLASSES: &str = "/apis/eks.amazonaws.com/v1/nodeclasses";
const PODS: &str = "/api/v1/pods";
const DAEMONSETS: &str = "/apis/apps/v1/daemonsets";

/// Karpenter's tags and labels (`docs/concepts/nodeclasses.md`, `scheduling.md`).
pub const NODEPOOL: &str = "karpenter.sh/nodepool";
pub const EC2_NODE_CLASS: &str = "karpenter.k8s.aws/ec2nodeclass";
pub const CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
pub const EKS_CLUSTER_NAME: &str = "eks:eks-cluster-name";
/// Auto Mode's tags (AmazonEKSComputePolicy) and labels (`automode/create-node-pool.adoc`).
pub const AUTO_NODE_CLASS_TAG: &str = "eks:kubernetes-node-class-name";
pub const AUTO_NODE_POOL_TAG: &str = "eks:kubernetes-node-pool-name";
pub use super::auto_mode::{AUTO_NODE_CLASS, COMPUTE_TYPE};

const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";

/// How long an instance launched for a pool still counts while DescribeInstances does not
/// show it (as `LAUNCH_GRACE` for nodegroups).
const LAUNCH_GRACE: Duration = super::LAUNCH_GRACE;

/// Whose nodes: Karpenter's (an `EC2NodeClass`) or Auto Mode's (a `NodeClass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavour {
    Karpenter,
    AutoMode,
}

impl Flavour {
    /// The flavour of a `nodeClassRef` (group, kind).
    fn of_ref(group: &str, kind: &str) -> Option<Flavour> {
        match (group, kind) {
            ("karpenter.k8s.aws", "EC2NodeClass") => Some(Flavour::Karpenter),
            ("eks.amazonaws.com", "NodeClass") => Some(Flavour::AutoMode),
            _ => None,
        }
    }

    /// The tag naming an instance's pool.
    fn pool_tag(self) -> &'static str {
        match self {
            Flavour::Karpenter => NODEPOOL,
            Flavour::AutoMode => AUTO_NODE_POOL_TAG,
        }
    }
}

/// An `EC2NodeClass` or a `NodeClass`, as far as launching goes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeClass {
    pub name: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    /// `spec.kubelet.maxPods` (EC2NodeClass only).
    pub max_pods: Option<u32>,
    /// Where its nodes' pods go (Auto Mode's NodeClass only; `auto_mode.rs`).
    pub pod_terms: super::auto_mode::PodTerms,
}

/// The `id`s of a list of selector terms (other terms are not understood here).
fn term_ids(spec: &Value, key: &str) -> Vec<String> {
    spec[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect()
}

impl NodeClass {
    pub fn from_object(v: &Value) -> Option<NodeClass> {
        let name = v.pointer("/metadata/name")?.as_str()?.to_string();
        let spec = v.get("spec").cloned().unwrap_or(Value::Null);
        Some(NodeClass {
            name,
            subnets: term_ids(&spec, "subnetSelectorTerms"),
            security_groups: term_ids(&spec, "securityGroupSelectorTerms"),
            max_pods: spec
                .pointer("/kubelet/maxPods")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok()),
            pod_terms: super::auto_mode::PodTerms::of(v),
        })
    }
}

/// A `NodePool`, as far as launching goes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodePool {
    pub name: String,
    pub flavour: Option<Flavour>,
    pub class: String,
    /// `template.metadata.labels`
    pub labels: BTreeMap<String, String>,
    /// The values of the requirement `node.kubernetes.io/instance-type In [...]`.
    pub instance_types: Vec<String>,
    /// `limits.nodes`: a quantity, written as a string or a number.
    pub node_limit: Option<usize>,
    pub weight: i64,
}

impl NodePool {
    pub fn from_object(v: &Value) -> Option<NodePool> {
        let name = v.pointer("/metadata/name")?.as_str()?.to_string();
        let template = v.pointer("/spec/template").cloned().unwrap_or(Value::Null);
        let class_ref = template.pointer("/spec/nodeClassRef").cloned();
        let class_ref = class_ref.unwrap_or(Value::Null);
        let labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let instance_types = template
            .pointer("/spec/requirements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| r["key"] == INSTANCE_TYPE_LABEL && r["operator"] == "In")
            .map(|r| {
                r["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let node_limit = match v.pointer("/spec/limits/nodes") {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        Some(NodePool {
            name,
            flavour: Flavour::of_ref(
                class_ref["group"].as_str().unwrap_or_default(),
                class_ref["kind"].as_str().unwrap_or_default(),
            ),
            class: class_ref["name"].as_str().unwrap_or_default().to_string(),
            labels,
            instance_types,
            node_limit,
            weight: v
                .pointer("/spec/weight")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        })
    }
}

/// Whether Karpenter would provision for a pod (see the module comment).
pub fn provisionable(pod: &Value) -> bool {
    let unschedulable = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"] == "Unschedulable"
        });
    node_name_of(pod).is_none()
        && pod.pointer("/metadata/deletionTimestamp").is_none()
        && !owned_by_daemonset(pod)
        && unschedulable
}

/// The labels a node of the pool carries, beyond the well-known ones of its instance
/// (hostname, zone, region, instance type, arch, os; `nodes.rs`).
pub fn pool_labels(
    flavour: Flavour,
    pool: &str,
    class: &str,
    template: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = template.clone();
    labels.insert(NODEPOOL.to_string(), pool.to_string());
    match flavour {
        Flavour::Karpenter => {
            labels.insert(EC2_NODE_CLASS.to_string(), class.to_string());
            labels.insert(CAPACITY_TYPE.to_string(), "on-demand".to_string());
        }
        Flavour::AutoMode => {
            labels.insert(COMPUTE_TYPE.to_string(), "auto".to_string());
            labels.insert(AUTO_NODE_CLASS.to_string(), class.to_string());
            // Auto Mode launches on-demand unless a pool asks for spot (create-node-pool.adoc).
            labels.insert(CAPACITY_TYPE.to_string(), "on-demand".to_string());
        }
    }
    labels
}

/// Whether a pod's `nodeSelector` holds on a node with these labels (and the well-known
/// ones of its instance type: `kubernetes.io/os`, `kubernetes.io/arch`, the type; and any
/// of `zones`).
pub fn selector_fits(
    pod: &Value,
    labels: &BTreeMap<String, String>,
    itype: &InstanceType,
    zones: &BTreeSet<String>,
) -> bool {
    let Some(selector) = pod.pointer("/spec/nodeSelector").and_then(Value::as_object) else {
        return true;
    };
    let arch = super::nodes::kubernetes_arch(&itype.architectures);
    selector.iter().all(|(k, v)| {
        let Some(v) = v.as_str() else {
            return false;
        };
        match k.as_str() {
            "kubernetes.io/os" => v == "linux",
            "kubernetes.io/arch" => v == arch,
            INSTANCE_TYPE_LABEL => v == itype.name,
            "topology.kubernetes.io/zone" => zones.contains(v),
            _ => labels.get(k).map(String::as_str) == Some(v),
        }
    })
}

/// Karpenter's max pods for a node of the class: `kubelet.maxPods`, else `ENILimitedPods`
/// with RESERVED_ENIS = 0 (see the module comment).
pub fn karpenter_max_pods(class: &NodeClass, t: &InstanceType) -> u32 {
    class
        .max_pods
        .unwrap_or_else(|| t.max_enis * t.ipv4_per_eni.saturating_sub(1) + 2)
}

/// How many more nodes `pending` pods need when the pool's nodes have `room` pods free and a
/// new node takes `per_node`.
pub fn nodes_needed(pending: usize, room: usize, per_node: usize) -> usize {
    if pending <= room || per_node == 0 {
        return 0;
    }
    (pending - room).div_ceil(per_node)
}

/// How many of `needed` nodes may be launched with `live` instances under `limit`.
pub fn within_limit(needed: usize, live: usize, limit: Option<usize>) -> usize {
    match limit {
        Some(l) => needed.min(l.saturating_sub(live)),
        None => needed,
    }
}

/// The instance tags of a node of the pool (see the module comment).
pub fn instance_tags(
    flavour: Flavour,
    cluster: &str,
    pool: &str,
    class: &str,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    tags.insert(EKS_CLUSTER_NAME.to_string(), cluster.to_string());
    match flavour {
        Flavour::Karpenter => {
            tags.insert(NODEPOOL.to_string(), pool.to_string());
            tags.insert(EC2_NODE_CLASS.to_string(), class.to_string());
            tags.insert(
                format!("{CLUSTER_TAG_PREFIX}{cluster}"),
                "owned".to_string(),
            );
        }
        Flavour::AutoMode => {
            tags.insert(AUTO_NODE_CLASS_TAG.to_string(), class.to_string());
            tags.insert(AUTO_NODE_POOL_TAG.to_string(), pool.to_string());
        }
    }
    tags
}

/// The flavour and pool of an instance launched for a pool.
pub fn pool_of(i: &Instance) -> Option<(Flavour, &str)> {
    if let Some(pool) = i.tag(AUTO_NODE_POOL_TAG) {
        return Some((Flavour::AutoMode, pool));
    }
    i.tag(NODEPOOL).map(|p| (Flavour::Karpenter, p))
}

/// The cluster an Auto Mode instance joins: EKS runs it for the cluster its
/// `eks:eks-cluster-name` tag names.
pub fn auto_mode_cluster(i: &Instance) -> Option<&str> {
    i.tag(AUTO_NODE_CLASS_TAG)?;
    i.tag(EKS_CLUSTER_NAME).filter(|c| !c.is_empty())
}

/// The labels of a pool's node from its instance's tags alone (when what was decided at
/// launch is not remembered: the pool's template labels are then missing).
pub fn labels_from_tags(i: &Instance) -> Option<BTreeMap<String, String>> {
    let (flavour, pool) = pool_of(i)?;
    let class = match flavour {
        Flavour::Karpenter => i.tag(EC2_NODE_CLASS)?,
        Flavour::AutoMode => i.tag(AUTO_NODE_CLASS_TAG)?,
    };
    Some(pool_labels(flavour, pool, class, &BTreeMap::new()))
}

/// The AL2023 user data Karpenter renders (base64): one NodeConfig in a MIME multi-part
/// document, max pods in the kubelet config, the labels as `--node-labels`.
pub fn karpenter_user_data(
    cluster: &Cluster,
    max_pods: u32,
    labels: &BTreeMap<String, String>,
) -> String {
    let mut spec_cluster = json!({"name": cluster.name});
    for (key, value) in [
        ("apiServerEndpoint", &cluster.endpoint),
        ("certificateAuthority", &cluster.certificate_authority),
        ("cidr", &cluster.service_cidr),
    ] {
        if let Some(v) = value {
            spec_cluster[key] = json!(v);
        }
    }
    let node_labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let config = json!({
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {
            "cluster": spec_cluster,
            "kubelet": {
                "config": {"maxPods": max_pods},
                "flags": [format!("--node-labels={}", node_labels.join(","))],
            },
        },
    });
    let yaml = serde_yaml::to_string(&config).unwrap_or_default();
    let text = format!(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"//\"\n\n--//\nContent-Type: application/node.eks.aws\n\n{yaml}\n--//--\n"
    );
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An instance the provisioner launched, kept while DescribeInstances may not show it yet.
#[derive(Clone, Debug)]
pub struct Launched {
    pub region: String,
    pub flavour: Flavour,
    pub pool: String,
    pub zone: String,
    pub since: Instant,
}

/// What one pass read of the API server for the provisioner.
struct Objects {
    pools: Vec<NodePool>,
    karpenter_classes: Vec<NodeClass>,
    auto_classes: Vec<NodeClass>,
    pods: Vec<Value>,
    daemonsets: Vec<Value>,
}

impl Objects {
    fn class(&self, pool: &NodePool) -> Option<&NodeClass> {
        let classes = match pool.flavour? {
            Flavour::Karpenter => &self.karpenter_classes,
            Flavour::AutoMode => &self.auto_classes,
        };
        classes.iter().find(|c| c.name == pool.class)
    }

    /// DaemonSet pods a node with these labels runs (their template's nodeSelector).
    fn daemon_overhead(&self, labels: &BTreeMap<String, String>) -> usize {
        self.daemonsets
            .iter()
            .filter(|ds| {
                ds.pointer("/spec/template/spec/nodeSelector")
                    .and_then(Value::as_object)
                    .is_none_or(|sel| {
                        sel.iter().all(|(k, v)| {
                            // Well-known labels every node here has.
                            k == "kubernetes.io/os" && v == "linux"
                                || labels.get(k).map(String::as_str) == v.as_str()
                        })
                    })
            })
            .count()
    }
}

/// One pool's launch, decided.
struct Plan<'a> {
    pool: &'a NodePool,
    class: &'a NodeClass,
    cluster: Cluster,
    itype: InstanceType,
    max_pods: u32,
    labels: BTreeMap<String, String>,
    /// subnet → zone, of the class's subnets in this scope.
    subnets: BTreeMap<String, String>,
    count: usize,
}

impl DataPlane {
    /// Step 2b (see the module comment): launches for the pools' provisionable pods, and
    /// ends the instances of pools that are gone.
    pub(super) async fn provision(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        observed: &mut [Observed<'_>],
    ) {
        let objects = match self.read_objects(side).await {
            Ok(o) => {
                self.solved("provisioner");
                o
            }
            Err(e) => return self.problem("provisioner", e),
        };
        // Listed by DescribeInstances (or launched by an earlier step of this pass): a
        // launch remembered and listed now needs remembering no more.
        let listed: BTreeSet<String> = observed
            .iter()
            .flat_map(|o| o.instances.iter().map(|i| i.id.clone()))
            .collect();
        for obs in observed.iter_mut() {
            self.end_orphans(pass, side, obs, &objects).await;
            if objects.pools.is_empty() {
                continue;
            }
            let subject = format!("{}/provisioner", obs.scope.region);
            match self.provision_scope(pass, side, obs, &objects).await {
                Ok(()) => self.solved(&subject),
                Err(e) => self.problem(&subject, e),
            }
        }
        self.remember(pass, |m| {
            m.provisioned
                .retain(|id, l| !listed.contains(id) && l.since.elapsed() < LAUNCH_GRACE)
        });
    }

    async fn read_objects(&self, side: &KubeSide<'_>) -> Result<Objects, String> {
        let kube = &side.kube;
        let pools: Vec<NodePool> = kube
            .list(NODE_POOLS)
            .await?
            .iter()
            .filter_map(NodePool::from_object)
            .collect();
        if pools.is_empty() {
            return Ok(Objects {
                pools,
                karpenter_classes: Vec::new(),
                auto_classes: Vec::new(),
                pods: Vec::new(),
                daemonsets: Vec::new(),
            });
        }
        let classes = |items: Vec<Value>| -> Vec<NodeClass> {
            items.iter().filter_map(NodeClass::from_object).collect()
        };
        Ok(Objects {
            karpenter_classes: classes(kube.list(EC2_NODE_CLASSES).await?),
            auto_classes: classes(kube.list(NODE_CLASSES).await?),
            pods: kube.list(PODS).await?,
            daemonsets: kube.list(DAEMONSETS).await?,
            pools,
        })
    }

    /// Drains and terminates the live instances of pools the API server no longer has.
    async fn end_orphans(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        obs: &mut Observed<'_>,
        objects: &Objects,
    ) {
        let orphans: Vec<String> = obs
            .instances
            .iter()
            .filter(|i| alive(i))
            .filter(|i| {
                pool_of(i).is_some_and(|(flavour, pool)| {
                    !objects
                        .pools
                        .iter()
                        .any(|p| p.name == pool && p.flavour == Some(flavour))
                })
            })
            .map(|i| i.id.clone())
            .collect();
        if orphans.is_empty() {
            return;
        }
        let force = Duration::from_millis(pass.cfg.drain_force_ms);
        self.end_instances(pass, side, obs, &orphans, false, force)
            .await;
    }

    async fn provision_scope(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        obs: &mut Observed<'_>,
        objects: &Objects,
    ) -> Result<(), String> {
        let ec2 = Ec2 {
            host: pass.host,
            scope: obs.scope,
        };
        let mut pools: Vec<&NodePool> = objects.pools.iter().collect();
        pools.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.name.cmp(&b.name)));
        let mut taken: BTreeSet<String> = BTreeSet::new();
        let mut plans = Vec::new();
        for pool in pools {
            let (Some(flavour), Some(class)) = (pool.flavour, objects.class(pool)) else {
                continue;
            };
            if class.subnets.is_empty() {
                continue;
            }
            let places = ec2.subnet_places(&class.subnets).await?;
            let Some(vpc) = places.values().map(|(_, vpc)| vpc.clone()).next() else {
                // Not this scope's subnets.
                continue;
            };
            let cluster = obs
                .clusters
                .iter()
                .filter(|c| c.serving())
                .filter(|c| c.vpc_id.as_ref().is_none_or(|v| *v == vpc))
                .filter(|c| flavour == Flavour::Karpenter || c.compute_enabled)
                .min_by(|a, b| a.name.cmp(&b.name))
                .cloned();
            let Some(cluster) = cluster else {
                continue;
            };
            let subject = format!("nodepool {}", pool.name);
            let Some(itype) = self.smallest_type(pass, obs, &pool.instance_types).await else {
                let types = &pool.instance_types;
                self.problem(
                    &subject,
                    format!("no instance type of {types:?} is known to EC2"),
                );
                continue;
            };
            self.solved(&subject);
            let max_pods = match flavour {
                Flavour::Karpenter => karpenter_max_pods(class, &itype),
                Flavour::AutoMode => super::auto_mode::max_pods(&itype, &class.pod_terms),
            };
            let labels = pool_labels(flavour, &pool.name, &class.name, &pool.labels);
            let zones: BTreeSet<String> = places.values().map(|(z, _)| z.clone()).collect();
            let pending: Vec<String> = objects
                .pods
                .iter()
                .filter(|p| provisionable(p))
                .filter(|p| selector_fits(p, &labels, &itype, &zones))
                .map(|p| {
                    format!(
                        "{}/{}",
                        p.pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("default"),
                        name_of(p)
                    )
                })
                .filter(|key| !taken.contains(key))
                .collect();
            taken.extend(pending.iter().cloned());
            let overhead = objects.daemon_overhead(&labels);
            let cap = usize::try_from(max_pods).unwrap_or(0);
            let per_node = cap.saturating_sub(overhead);
            let members = self.pool_members(obs, flavour, &pool.name, &cluster.name);
            let room = self.room(side, objects, &members, cap, overhead);
            let needed = nodes_needed(pending.len(), room, per_node);
            let count = within_limit(needed, members.len(), pool.node_limit);
            if count == 0 {
                continue;
            }
            let subnets = places
                .into_iter()
                .map(|(id, (zone, _))| (id, zone))
                .collect();
            plans.push(Plan {
                pool,
                class,
                cluster,
                itype,
                max_pods,
                labels,
                subnets,
                count,
            });
        }
        for plan in plans {
            self.launch(pass, obs, &plan).await?;
        }
        Ok(())
    }

    /// Of `names`, the type with fewest vCPUs EC2 knows (the first written among equals).
    async fn smallest_type(
        &self,
        pass: &Pass<'_>,
        obs: &Observed<'_>,
        names: &[String],
    ) -> Option<InstanceType> {
        let mut known = Vec::new();
        for n in names {
            if let Ok(mut t) = self
                .instance_types(pass, obs.scope, std::slice::from_ref(n))
                .await
            {
                known.extend(t.pop());
            }
        }
        known.into_iter().min_by_key(|t| t.vcpus)
    }

    /// The pool's live instances of this cluster (id, zone), and those launched lately that
    /// DescribeInstances does not show yet.
    fn pool_members(
        &self,
        obs: &Observed<'_>,
        flavour: Flavour,
        pool: &str,
        cluster: &str,
    ) -> Vec<(String, String)> {
        let mut members: Vec<(String, String)> = obs
            .instances
            .iter()
            .filter(|i| alive(i))
            .filter(|i| i.tag(flavour.pool_tag()) == Some(pool))
            .filter(|i| i.tag(EKS_CLUSTER_NAME) == Some(cluster))
            .map(|i| (i.id.clone(), i.availability_zone.clone()))
            .collect();
        let seen: BTreeSet<&String> = obs.instances.iter().map(|i| &i.id).collect();
        let memory = lock(&self.memory);
        for (id, l) in &memory.provisioned {
            let ours = l.region == obs.scope.region && l.flavour == flavour && l.pool == pool;
            if ours && !seen.contains(id) && l.since.elapsed() < LAUNCH_GRACE {
                members.push((id.clone(), l.zone.clone()));
            }
        }
        members
    }

    /// Pods the pool's instances still take: each its max pods (decided at launch, else
    /// `max_pods`) less its DaemonSet pods and the other pods bound to its Node.
    fn room(
        &self,
        side: &KubeSide<'_>,
        objects: &Objects,
        members: &[(String, String)],
        max_pods: usize,
        overhead: usize,
    ) -> usize {
        let memory = lock(&self.memory);
        members
            .iter()
            .map(|(id, _)| {
                let cap = memory
                    .max_pods
                    .get(id)
                    .and_then(|n| usize::try_from(*n).ok())
                    .unwrap_or(max_pods);
                let bound = side.node_of(id).map_or(0, |node| {
                    objects
                        .pods
                        .iter()
                        .filter(|p| node_name_of(p) == Some(node.as_str()))
                        .filter(|p| !owned_by_daemonset(p))
                        .count()
                });
                cap.saturating_sub(overhead).saturating_sub(bound)
            })
            .sum()
    }

    /// Launches a plan's instances, each in the zone with fewest of the pool's instances.
    async fn launch(
        &self,
        pass: &Pass<'_>,
        obs: &mut Observed<'_>,
        plan: &Plan<'_>,
    ) -> Result<(), String> {
        let ec2 = Ec2 {
            host: pass.host,
            scope: obs.scope,
        };
        let Some(flavour) = plan.pool.flavour else {
            return Ok(());
        };
        let security_groups = if plan.class.security_groups.is_empty() {
            plan.cluster.security_group.clone().into_iter().collect()
        } else {
            plan.class.security_groups.clone()
        };
        let tags = instance_tags(
            flavour,
            &plan.cluster.name,
            &plan.pool.name,
            &plan.class.name,
        );
        let user_data = match flavour {
            Flavour::Karpenter => Some(karpenter_user_data(
                &plan.cluster,
                plan.max_pods,
                &plan.labels,
            )),
            // EKS renders and owns an Auto Mode node's configuration.
            Flavour::AutoMode => None,
        };
        for _ in 0..plan.count {
            if !pass.current() {
                return Ok(());
            }
            let members = self.pool_members(obs, flavour, &plan.pool.name, &plan.cluster.name);
            let Some(subnet) = spread(&plan.subnets, &members) else {
                return Ok(());
            };
            let launch = Launch {
                subnet_id: subnet,
                instance_type: plan.itype.name.clone(),
                image_id: Some(EKS_AMI.to_string()),
                template: None,
                security_group_ids: security_groups.clone(),
                tags: tags.clone(),
                user_data: user_data.clone(),
            };
            let instance = ec2.run(&launch).await?;
            let id = instance.id.clone();
            let launched = Launched {
                region: obs.scope.region.clone(),
                flavour,
                pool: plan.pool.name.clone(),
                zone: instance.availability_zone.clone(),
                since: Instant::now(),
            };
            let (max_pods, labels) = (plan.max_pods, plan.labels.clone());
            self.remember(pass, |m| {
                m.max_pods.insert(id.clone(), max_pods);
                m.node_labels.insert(id.clone(), labels);
                m.provisioned.insert(id, launched);
            });
            obs.instances.push(instance);
        }
        Ok(())
    }
}

/// The first subnet (by id) of the zone with fewest of `members` (id, zone).
fn spread(subnets: &BTreeMap<String, String>, members: &[(String, String)]) -> Option<String> {
    subnets
        .iter()
        .min_by_key(|(id, zone)| {
            let n = members.iter().filter(|(_, z)| z == *zone).count();
            (n, (*id).clone())
        })
        .map(|(id, _)| id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m5_large() -> InstanceType {
        InstanceType {
            name: "m5.large".into(),
            max_enis: 3,
            default_card_enis: Some(3),
            ipv4_per_eni: 10,
            vcpus: 2,
            hypervisor: "nitro".into(),
            architectures: vec!["x86_64".into()],
        }
    }

    fn unschedulable(selector: Value) -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeSelector": selector},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
                "status": "False", "reason": "Unschedulable"}]}})
    }

    #[test]
    fn a_pool_and_its_class_read_back() {
        let pool = NodePool::from_object(&json!({
            "metadata": {"name": "default"},
            "spec": {"weight": 10, "limits": {"nodes": "4"}, "template": {
                "metadata": {"labels": {"team": "web"}},
                "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                        {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": ["m5.large", "m5.xlarge"]}]}}}}))
        .unwrap();
        assert_eq!(pool.flavour, Some(Flavour::Karpenter));
        assert_eq!(pool.instance_types, ["m5.large", "m5.xlarge"]);
        assert_eq!(pool.node_limit, Some(4));
        assert_eq!(pool.weight, 10);
        assert_eq!(pool.labels["team"], "web");
        // Auto Mode's pool: limits as numbers, its class by group and kind.
        let auto = NodePool::from_object(&json!({"metadata": {"name": "apps"},
            "spec": {"limits": {"nodes": 2}, "template": {"spec": {
                "nodeClassRef": {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "apps"}}}}}))
        .unwrap();
        assert_eq!(auto.flavour, Some(Flavour::AutoMode));
        assert_eq!(auto.node_limit, Some(2));
        let other = NodePool::from_object(&json!({"metadata": {"name": "x"},
            "spec": {"template": {"spec": {"nodeClassRef": {"group": "example.com", "kind": "K", "name": "x"}}}}}))
        .unwrap();
        assert_eq!(
            other.flavour, None,
            "a class of another provider is not ours"
        );
        let class = NodeClass::from_object(&json!({"metadata": {"name": "default"},
            "spec": {"subnetSelectorTerms": [{"id": "subnet-a"}, {"tags": {"x": "y"}}, {"id": "subnet-b"}],
                "securityGroupSelectorTerms": [{"id": "sg-1"}], "kubelet": {"maxPods": 20}}}))
        .unwrap();
        assert_eq!(class.subnets, ["subnet-a", "subnet-b"]);
        assert_eq!(class.security_groups, ["sg-1"]);
        assert_eq!(class.max_pods, Some(20));
    }

    #[test]
    fn only_unschedulable_pods_the_pool_can_take_are_its() {
        let labels = pool_labels(
            Flavour::Karpenter,
            "default",
            "default",
            &[("team".to_string(), "web".to_string())].into(),
        );
        let zones: BTreeSet<String> = ["us-west-2a".to_string()].into();
        let t = m5_large();
        let fits = |sel: Value| selector_fits(&unschedulable(sel), &labels, &t, &zones);
        assert!(fits(json!({"karpenter.sh/nodepool": "default"})));
        assert!(fits(json!({"team": "web", "kubernetes.io/arch": "amd64"})));
        assert!(fits(json!({"karpenter.sh/capacity-type": "on-demand"})));
        assert!(!fits(json!({"karpenter.sh/nodepool": "other"})));
        assert!(!fits(json!({"eks.amazonaws.com/nodegroup": "system"})));
        assert!(!fits(json!({"topology.kubernetes.io/zone": "us-west-2c"})));
        assert!(!fits(json!({INSTANCE_TYPE_LABEL: "m5.xlarge"})));
        assert!(provisionable(&unschedulable(json!({}))));
        let mut bound = unschedulable(json!({}));
        bound["spec"]["nodeName"] = json!("ip-1");
        assert!(!provisionable(&bound));
        let mut waiting = unschedulable(json!({}));
        waiting["status"]["conditions"] = json!([]);
        assert!(!provisionable(&waiting), "not yet tried by the scheduler");
        let auto = pool_labels(Flavour::AutoMode, "apps", "apps", &BTreeMap::new());
        assert_eq!(auto[COMPUTE_TYPE], "auto");
        assert_eq!(auto[AUTO_NODE_CLASS], "apps");
        assert_eq!(auto[NODEPOOL], "apps");
    }

    #[test]
    fn max_pods_is_the_class_value_else_karpenters_eni_count() {
        let t = m5_large();
        let mut class = NodeClass {
            max_pods: Some(20),
            ..NodeClass::default()
        };
        assert_eq!(karpenter_max_pods(&class, &t), 20);
        class.max_pods = None;
        // 3 ENIs × 9 + 2: the primary ENI counted, as custom networking does not use it.
        assert_eq!(karpenter_max_pods(&class, &t), 29);
    }

    #[test]
    fn nodes_for_the_pods_beyond_the_room_left_and_under_the_limit() {
        // 24 pods, 18 a node (20 less aws-node and kube-proxy): two nodes.
        assert_eq!(nodes_needed(24, 0, 18), 2);
        // One launched and not joined yet holds 18 of them: one more.
        assert_eq!(nodes_needed(24, 18, 18), 1);
        assert_eq!(nodes_needed(10, 18, 18), 0);
        assert_eq!(
            nodes_needed(5, 0, 0),
            0,
            "a node that holds no pod is no help"
        );
        assert_eq!(within_limit(3, 2, Some(4)), 2);
        assert_eq!(within_limit(3, 4, Some(4)), 0);
        assert_eq!(within_limit(3, 5, Some(4)), 0);
        assert_eq!(within_limit(3, 9, None), 3);
    }

    #[test]
    fn launches_spread_over_the_zones() {
        let subnets: BTreeMap<String, String> = [
            ("subnet-a".to_string(), "us-west-2a".to_string()),
            ("subnet-b".to_string(), "us-west-2b".to_string()),
        ]
        .into();
        assert_eq!(spread(&subnets, &[]).as_deref(), Some("subnet-a"));
        let one = [("i-1".to_string(), "us-west-2a".to_string())];
        assert_eq!(spread(&subnets, &one).as_deref(), Some("subnet-b"));
        assert_eq!(spread(&BTreeMap::new(), &one), None);
    }

    #[test]
    fn tags_and_user_data_as_karpenter_and_auto_mode_set_them() {
        let k = instance_tags(Flavour::Karpenter, "demo", "default", "nc");
        assert_eq!(k[NODEPOOL], "default");
        assert_eq!(k[EC2_NODE_CLASS], "nc");
        assert_eq!(k["kubernetes.io/cluster/demo"], "owned");
        assert_eq!(k[EKS_CLUSTER_NAME], "demo");
        let a = instance_tags(Flavour::AutoMode, "demo", "apps", "apps-class");
        assert_eq!(a[AUTO_NODE_POOL_TAG], "apps");
        assert_eq!(a[AUTO_NODE_CLASS_TAG], "apps-class");
        assert_eq!(a[EKS_CLUSTER_NAME], "demo");
        assert!(!a.contains_key("kubernetes.io/cluster/demo"));
        let cluster = Cluster {
            name: "demo".into(),
            endpoint: Some("https://example.eks".into()),
            ..Cluster::default()
        };
        let labels = pool_labels(Flavour::Karpenter, "default", "nc", &BTreeMap::new());
        let data = karpenter_user_data(&cluster, 20, &labels);
        // What nodeadm on the node reads from it: the max pods.
        assert_eq!(super::super::max_pods::from_user_data(&data), Some(20));
        let text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&data)
                .unwrap(),
        )
        .unwrap();
        assert!(text.contains("karpenter.sh/nodepool=default"), "{text}");
        assert!(
            text.contains("apiServerEndpoint: https://example.eks"),
            "{text}"
        );
    }
}
