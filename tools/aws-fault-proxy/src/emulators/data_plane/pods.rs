//! Step 4 of a pass: what runs on the nodes. For every Node of an instance the pass
//! observed (the data plane's nodes; the API server's other Nodes are left alone):
//!
//! - **VPC CNI** (`cni.rs`): its settings snapshot when aws-node first runs there; its
//!   ENIs and warm pool made in moto (CreateNetworkInterface, AttachNetworkInterface,
//!   AssignPrivateIpAddresses); the Node `Ready` once ipamd initialised, `NotReady`
//!   (`NetworkPluginNotReady`) before.
//! - **VPC resource controller** (`vrc.rs`, carried out in `branches.rs`): with
//!   `ENABLE_POD_ENI=true`, a trunk interface on each trunk-compatible node and its
//!   `vpc.amazonaws.com/pod-eni` capacity; the webhook's request on the pods a
//!   SecurityGroupPolicy selects, their branch interfaces and annotations; branches of pods
//!   that are gone deleted after `branch_cooldown_ms`.
//! - **kube-controller-manager**: the DaemonSet controller (one pod per matching node,
//!   tolerating not-ready and unschedulable nodes, kubernetes `pkg/controller/daemon/util`
//!   `AddOrUpdateDaemonPodTolerations`), pod GC (pods of a Node that is gone are deleted,
//!   `pkg/controller/podgc`), and, while a cluster is serving, the Deployment and
//!   ReplicaSet controllers (`workloads.rs`).
//! - **drain** before an instance ends: evictions that honour PodDisruptionBudgets.
//! - **kube-scheduler**: a pod without `spec.nodeName` goes to a Ready, schedulable node
//!   matching its nodeSelector and tolerating the node's NoSchedule/NoExecute taints, with
//!   room under `allocatable.pods` (and a free `vpc.amazonaws.com/pod-eni` for a pod that
//!   asks for one); fewest pods of the same owner first, then fewest pods.
//!   A pod no node can take is marked `PodScheduled` False, reason `Unschedulable`.
//! - **kubelet**: a bound pod shows `ContainerCreating` first; from the next pass it gets an address of its node's pool (hostNetwork: the node's
//!   own; one with a branch interface: the branch's) and runs; no address free: `Pending`,
//!   containers waiting `ContainerCreating`.
//!
//! Everything is read back each pass: the ENIs from moto, the addresses in use from the
//! pods' `status.podIP`. Only the CNI settings of a node are kept in memory (ipamd keeps
//! them in its process). Within a pass the reads are shared by the nodes ([`NetView`], one
//! pod list): a pass makes the same few requests for 2 nodes as for 20, instead of a few
//! per node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::{json, Value};

use crate::core::emulator::Pass;
use crate::shared::{form_encode, lock};

use super::auto_mode;
use super::cni::{self, Settings};
use super::daemonsets;
use super::ec2::{Ec2, Eni, Instance, Subnet};
use super::identity::{self, Credentials};
use super::kube::Kube;
use super::objects::{
    controller_uid, name_of, node_name_of, now_rfc3339, owned_by_daemonset, pod_path,
};
use super::{DataPlane, KubeSide, Observed};

const PODS: &str = "/api/v1/pods";
const ENI_CONFIGS: &str = "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs";
const DAEMONSETS: &str = "/apis/apps/v1/daemonsets";

/// One pass's look at a scope's network interfaces and subnets (DescribeNetworkInterfaces,
/// DescribeSubnets), shared by the ENI cleanup and the nodes the pass handles: read once a
/// pass, with the pass's own successful changes written in as moto made them (the address
/// given, the device index asked for), and read again after one that failed half-way. So
/// each node sees what moto holds, without a listing per node and per change.
pub(super) struct NetView<'a> {
    pub(super) ec2: Ec2<'a>,
    /// Every interface of the scope; `None`: to be read (again).
    enis: Option<Vec<Eni>>,
    /// Subnets by id (`None`: not found); their CIDR and zone never change.
    subnets: BTreeMap<String, Option<Subnet>>,
}

impl<'a> NetView<'a> {
    pub(super) fn new(ec2: Ec2<'a>) -> Self {
        NetView {
            ec2,
            enis: None,
            subnets: BTreeMap::new(),
        }
    }

    pub(super) async fn all(&mut self) -> Result<&[Eni], String> {
        let enis = match self.enis.take() {
            Some(e) => e,
            None => self.ec2.enis(&[]).await?,
        };
        Ok(self.enis.insert(enis))
    }

    /// The interfaces attached to an instance.
    pub(super) async fn attached(&mut self, instance: &str) -> Result<Vec<Eni>, String> {
        Ok(self
            .all()
            .await?
            .iter()
            .filter(|e| e.instance_id.as_deref() == Some(instance))
            .cloned()
            .collect())
    }

    /// Every address the interfaces of a subnet hold (moto's view, so another node's too).
    pub(super) async fn taken_in(&mut self, subnet: &str) -> Result<Vec<String>, String> {
        Ok(self
            .all()
            .await?
            .iter()
            .filter(|e| e.subnet_id == subnet)
            .flat_map(|e| e.private_ips.iter().map(|(ip, _)| ip.clone()))
            .collect())
    }

    /// After a change that may have been made in part: the next look reads again.
    pub(super) fn changed(&mut self) {
        self.enis = None;
    }

    /// An interface the pass created (and attached).
    pub(super) fn created(&mut self, eni: Eni) {
        if let Some(enis) = &mut self.enis {
            enis.push(eni);
        }
    }

    /// Secondary addresses the pass assigned to an interface.
    fn assigned(&mut self, eni: &str, ips: &[String]) {
        if let Some(e) = self
            .enis
            .as_mut()
            .and_then(|enis| enis.iter_mut().find(|e| e.id == eni))
        {
            e.private_ips
                .extend(ips.iter().map(|ip| (ip.clone(), false)));
        }
    }

    pub(super) async fn subnet(&mut self, id: &str) -> Result<Option<Subnet>, String> {
        if let Some(s) = self.subnets.get(id) {
            return Ok(s.clone());
        }
        let found = self.ec2.subnet(id).await?;
        self.subnets.insert(id.to_string(), found.clone());
        Ok(found)
    }
}

/// What the CNI of one node gives pods this pass.
pub(super) struct NodeNet {
    pub(super) name: String,
    pub(super) ready: bool,
    /// The addresses pods may have (secondary addresses of its pool ENIs).
    pub(super) pool: Vec<String>,
    pub(super) node: Value,
    /// The index of its scope in the pass's views.
    pub(super) scope: usize,
    /// Its ipamd's `ENABLE_POD_ENI`, and where its ENIs go (subnet, groups), once known.
    pub(super) pod_eni: bool,
    pub(super) target: Option<(String, Vec<String>)>,
    /// Its trunk interface (security groups for pods), once attached.
    pub(super) trunk: Option<Eni>,
    /// ENIs attached to its instance, and the most it takes.
    pub(super) attached: usize,
    pub(super) max_enis: usize,
    /// Its instance, and the cluster the instance is tagged for.
    pub(super) instance_id: String,
    pub(super) cluster: Option<String>,
}

impl NodeNet {
    fn new(name: &str, node: &Value, scope: usize) -> NodeNet {
        NodeNet {
            name: name.to_string(),
            ready: false,
            pool: Vec::new(),
            node: node.clone(),
            scope,
            pod_eni: false,
            target: None,
            trunk: None,
            attached: 0,
            max_enis: 0,
            instance_id: String::new(),
            cluster: None,
        }
    }
}

fn host_network(pod: &Value) -> bool {
    pod.pointer("/spec/hostNetwork") == Some(&Value::Bool(true))
}

fn pod_ip(pod: &Value) -> Option<&str> {
    pod.pointer("/status/podIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
}

fn node_ip(node: &Value) -> String {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn allocatable_pods(node: &Value) -> usize {
    node.pointer("/status/allocatable/pods")
        .and_then(Value::as_str)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn node_ready_condition(node: &Value) -> Option<bool> {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True")
}

/// Whether `labels` has every `key: value` of a nodeSelector.
fn selector_matches(selector: Option<&Value>, labels: Option<&Value>) -> bool {
    let Some(sel) = selector.and_then(Value::as_object) else {
        return true;
    };
    sel.iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether a node's labels satisfy a pod spec's required node affinity
/// (`requiredDuringSchedulingIgnoredDuringExecution`): one of its `nodeSelectorTerms`
/// whose `matchExpressions` all hold (kubernetes `component-helpers/scheduling/corev1/
/// nodeaffinity`), with the label selector's operators; `Gt`, `Lt` and `matchFields` are
/// not read (such a term matches no node). No required affinity: every node.
fn affinity_matches(spec: &Value, labels: Option<&Value>) -> bool {
    let Some(terms) = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    let labels = labels.cloned().unwrap_or(Value::Null);
    terms.iter().any(|t| {
        let expressions = &t["matchExpressions"];
        expressions.as_array().is_some_and(|es| !es.is_empty())
            && super::vrc::selector_matches(&json!({"matchExpressions": expressions}), &labels)
    })
}

/// Whether a toleration tolerates a taint (kubernetes `pkg/apis/core/v1/helper`
/// `ToleratesTaint`).
fn tolerates(t: &Value, taint: &Value) -> bool {
    let effect = t["effect"].as_str().unwrap_or_default();
    if !effect.is_empty() && Some(effect) != taint["effect"].as_str() {
        return false;
    }
    let key = t["key"].as_str().unwrap_or_default();
    match t["operator"].as_str().unwrap_or("Equal") {
        "Exists" => key.is_empty() || Some(key) == taint["key"].as_str(),
        _ => {
            Some(key) == taint["key"].as_str()
                && t["value"].as_str().unwrap_or_default()
                    == taint["value"].as_str().unwrap_or_default()
        }
    }
}

/// Whether a pod spec tolerates every NoSchedule/NoExecute taint of a node.
fn fits_taints(spec: &Value, node: &Value, extra: &[Value]) -> bool {
    let tolerations: Vec<&Value> = spec["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(extra.iter())
        .collect();
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")))
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

/// The tolerations the DaemonSet controller adds to its pods
/// (`pkg/controller/daemon/util/daemonset_util.go`).
fn daemon_tolerations(host: bool) -> Vec<Value> {
    let mut out = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host {
        out.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    out
}

/// Whether an ENI is the trunk of security groups for pods (`vrc.rs`).
pub(super) fn is_trunk(e: &Eni) -> bool {
    e.description == super::vrc::TRUNK_DESCRIPTION
}

/// Whether ipamd gives pods addresses of this ENI: not the primary under custom networking,
/// never the trunk.
fn is_pool(e: &Eni, s: &Settings) -> bool {
    !is_trunk(e) && (!s.custom_networking || e.device_index != Some(0))
}

/// Creates an interface in `subnet` with its primary address given and attaches it at the
/// next free device index with DeleteOnTermination, as the CNI and the VPC resource
/// controller both do (amazon-vpc-cni-k8s `pkg/awsutils/awsutils.go`;
/// amazon-vpc-resource-controller-k8s `pkg/aws/ec2/api/helper.go`,
/// `CreateAndAttachNetworkInterface`); an attach that fails deletes it again.
#[allow(clippy::too_many_arguments)]
pub(super) async fn attach_new(
    view: &mut NetView<'_>,
    instance: &Instance,
    subnet: &str,
    primary: &str,
    groups: &[String],
    description: String,
    tags: BTreeMap<String, String>,
    enis: &[Eni],
) -> Result<Eni, String> {
    let ec2 = &view.ec2;
    let (id, mac) = ec2
        .create_eni(subnet, primary, groups, &description, &tags)
        .await?;
    let index = enis
        .iter()
        .filter_map(|e| e.device_index)
        .max()
        .map_or(1, |i| i + 1);
    match ec2.attach_eni(&id, &instance.id, index).await {
        Ok(attachment) => {
            ec2.delete_on_termination(&id, &attachment).await?;
            let eni = Eni {
                id,
                subnet_id: subnet.to_string(),
                status: "in-use".to_string(),
                description,
                attachment_id: Some(attachment),
                instance_id: Some(instance.id.clone()),
                device_index: Some(index),
                private_ips: vec![(primary.to_string(), true)],
                groups: groups.to_vec(),
                tags,
                mac,
            };
            view.created(eni.clone());
            Ok(eni)
        }
        Err(e) => {
            let _ = ec2.delete_eni(&id).await;
            Err(e)
        }
    }
}

/// An object of the API server by path, read at most once a pass (`None`: there is none).
async fn cached_get(
    side: &KubeSide<'_>,
    objects: &mut BTreeMap<String, Option<Value>>,
    path: &str,
) -> Result<Option<Value>, String> {
    if let Some(o) = objects.get(path) {
        return Ok(o.clone());
    }
    let o = side.kube.get(path).await?;
    objects.insert(path.to_string(), o.clone());
    Ok(o)
}

/// Five characters of Kubernetes' name alphabet (`k8s.io/apimachinery/pkg/util/rand`),
/// derived from `seed` so that a pass that repeats a create gets a 409, not a second pod.
fn suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..5)
        .map(|_| {
            let i = usize::try_from(h % 27).unwrap_or(0);
            h /= 27;
            char::from(ALPHABET[i])
        })
        .collect()
}

impl DataPlane {
    /// Step 4 (see the module's comment).
    pub(super) async fn run_nodes(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        observed: &[Observed<'_>],
        views: &mut [NetView<'_>],
        serving: bool,
    ) -> Result<(), String> {
        let aws_node = side.kube.aws_node().await?;
        // Every pod once: each kubelet's own (`spec.nodeName`) are taken from it.
        let all_pods = side.kube.list(PODS).await?;
        // ENIConfigs and NodeClasses by path, read once a pass.
        let mut objects: BTreeMap<String, Option<Value>> = BTreeMap::new();
        // Who each node's CNI acts as, and its permissions, read once a pass.
        let mut creds = Credentials::default();
        let mut nets = Vec::new();
        for (scope, (obs, view)) in observed.iter().zip(views.iter_mut()).enumerate() {
            for node in side.nodes.clone() {
                let Some((_, id)) = node
                    .pointer("/spec/providerID")
                    .and_then(Value::as_str)
                    .and_then(super::nodes::parse_provider_id)
                else {
                    continue;
                };
                let Some(instance) = obs
                    .instances
                    .iter()
                    .find(|i| i.id == id && i.state == "running")
                else {
                    continue;
                };
                if !pass.current() {
                    return Ok(());
                }
                let name = name_of(&node);
                let pods_here: Vec<&Value> = all_pods
                    .iter()
                    .filter(|p| node_name_of(p) == Some(name.as_str()))
                    .collect();
                let net = match self
                    .node_cni(
                        pass,
                        side,
                        view,
                        &mut objects,
                        obs,
                        &node,
                        instance,
                        aws_node.as_ref(),
                        &pods_here,
                        scope,
                        &mut creds,
                    )
                    .await
                {
                    Ok(n) => {
                        self.solved(&format!("cni {name}"));
                        n
                    }
                    Err(e) => {
                        // A change may have been made before the failure.
                        view.changed();
                        self.problem(&format!("cni {name}"), e);
                        NodeNet::new(&name, &node, scope)
                    }
                };
                // The VPC resource controller, once ipamd has its settings.
                let mut net = net;
                match self.node_trunk(view, instance, side, &mut net).await {
                    Ok(()) => self.solved(&format!("trunk {name}")),
                    Err(e) => {
                        view.changed();
                        self.problem(&format!("trunk {name}"), e);
                    }
                }
                if node_ready_condition(&node) != Some(net.ready) {
                    side.kube
                        .merge_patch(
                            &format!("/api/v1/nodes/{}/status", form_encode(&name)),
                            &json!({"status": {"conditions": [super::nodes::ready_condition(net.ready)]}}),
                        )
                        .await?;
                }
                nets.push(net);
            }
        }
        if !pass.current() {
            return Ok(());
        }
        self.run_pods(pass, side, all_pods, &nets, views, serving, &creds)
            .await
    }

    /// The CNI of one node: its settings, ENIs and warm pool.
    #[allow(clippy::too_many_arguments)]
    async fn node_cni(
        &self,
        pass: &Pass<'_>,
        side: &KubeSide<'_>,
        view: &mut NetView<'_>,
        objects: &mut BTreeMap<String, Option<Value>>,
        obs: &Observed<'_>,
        node: &Value,
        instance: &Instance,
        aws_node: Option<&Value>,
        pods_here: &[&Value],
        scope: usize,
        creds: &mut Credentials,
    ) -> Result<NodeNet, String> {
        let name = name_of(node);
        let mut net = NodeNet::new(&name, node, scope);
        let attached = view.attached(&instance.id).await?;
        let primary = attached
            .iter()
            .find(|e| e.device_index == Some(0))
            .cloned()
            .unwrap_or_default();
        let auto_mode = auto_mode::node_class(node);
        let (settings, subnet_id, groups) = match &auto_mode {
            // EKS Auto Mode: no aws-node; the NodeClass decides (`auto_mode.rs`).
            Some(class) => {
                let path = format!(
                    "{}/{}",
                    super::provisioner::NODE_CLASSES,
                    form_encode(class)
                );
                let Some(class_object) = cached_get(side, objects, &path).await? else {
                    return Err(format!("NodeClass {class} not found"));
                };
                let terms = auto_mode::PodTerms::of(&class_object);
                let mut pod_subnets = Vec::new();
                for id in &terms.subnets {
                    pod_subnets.extend(view.subnet(id).await?);
                }
                let node_side = (instance.subnet_id.as_str(), primary.groups.as_slice());
                match auto_mode::placement(
                    &terms,
                    &pod_subnets,
                    &instance.availability_zone,
                    node_side,
                ) {
                    auto_mode::PodPlacement::In { subnet, groups } => {
                        (auto_mode::settings(&terms), subnet, groups)
                    }
                    // The node is up; its pods get no address (the kubelet's event, below).
                    auto_mode::PodPlacement::NoSubnetInZone => {
                        net.ready = true;
                        return Ok(net);
                    }
                }
            }
            None => {
                // The settings ipamd read when aws-node started here; no aws-node yet: no CNI.
                let remembered = lock(&self.memory).cni.get(&instance.id).cloned();
                let settings = match (remembered, aws_node) {
                    (Some(s), _) => s,
                    (None, Some(ds)) => {
                        let s = Settings::from_daemonset(ds);
                        let id = instance.id.clone();
                        let kept = s.clone();
                        self.remember(pass, |m| {
                            m.cni.insert(id, kept);
                        });
                        s
                    }
                    (None, None) => return Ok(net),
                };
                let (subnet, groups) = if settings.custom_networking {
                    let config_name = cni::eni_config_name(node, &settings);
                    let path = format!("{ENI_CONFIGS}/{}", form_encode(&config_name));
                    let Some(config) = cached_get(side, objects, &path).await? else {
                        // CNI ≥ 1.13 (amazon-vpc-cni-k8s #2354): ipamd fails, aws-node restarts.
                        return Err(format!(
                            "error while retrieving eniconfig: ENIConfig.crd.k8s.amazonaws.com \"{config_name}\" not found"
                        ));
                    };
                    let subnet = config
                        .pointer("/spec/subnet")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let mut groups: Vec<String> = config
                        .pointer("/spec/securityGroups")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect();
                    if groups.is_empty() {
                        // No groups in the ENIConfig: the primary ENI's (`pkg/awsutils/awsutils.go`).
                        groups = primary.groups.clone();
                    }
                    (subnet, groups)
                } else {
                    (instance.subnet_id.clone(), primary.groups.clone())
                };
                (settings, subnet, groups)
            }
        };
        net.pod_eni = settings.pod_eni;
        net.target = Some((subnet_id.clone(), groups.clone()));
        let itype = self
            .instance_types(
                pass,
                obs.scope,
                std::slice::from_ref(&instance.instance_type),
            )
            .await?
            .into_iter()
            .next()
            .ok_or("no instance type")?;
        let slots = itype.ipv4_per_eni.saturating_sub(1) as usize;
        let per_slot = if settings.prefix_delegation { 16 } else { 1 };
        let per_eni = slots * per_slot;
        let max_pods = allocatable_pods(node);
        let used: BTreeSet<String> = pods_here
            .iter()
            .filter(|p| !host_network(p))
            .filter_map(|p| pod_ip(p).map(str::to_string))
            .collect();
        let mut enis = attached;
        // ENABLE_POD_ENI on a type that can have a trunk: until the trunk is there, ipamd
        // keeps a slot for it (`ipamd.go`, `hasRoomForEni`); once it is, the trunk is an ENI
        // ipamd does not manage.
        let trunk_slot = |enis: &[Eni]| {
            usize::from(
                settings.pod_eni
                    && super::vrc::branch_interfaces(&instance.instance_type).is_some()
                    && !enis.iter().any(is_trunk),
            )
        };
        // Without EC2 permissions the pool stays as it is (`identity.rs`). Auto Mode's
        // networking acts as the cluster role (AmazonEKSNetworkingPolicy), not aws-node's.
        let denied = match auto_mode {
            Some(_) => None,
            None => {
                self.cni_denied(pass, side, obs, node, instance, aws_node, pods_here, creds)
                    .await?
            }
        };
        let subject = format!("cni permissions {name}");
        match &denied {
            Some(why) => self.problem(&subject, why.clone()),
            None => self.solved(&subject),
        }
        let rounds = if denied.is_some() { 0 } else { 4 };
        // Up to a few changes a pass; ipamd checks every 5 s (`ipamd.go`).
        for _ in 0..rounds {
            let pool_enis: Vec<&Eni> = enis.iter().filter(|e| is_pool(e, &settings)).collect();
            let total: usize = pool_enis.iter().map(|e| e.secondary_ips().count()).sum();
            let in_use = pool_enis
                .iter()
                .flat_map(|e| e.secondary_ips())
                .filter(|ip| used.contains(*ip))
                .count();
            let mut need = cni::wanted(&settings, total, in_use, max_pods, per_eni);
            let needs_eni = settings.custom_networking && pool_enis.is_empty();
            if need == 0 && !needs_eni {
                break;
            }
            // The subnet matters once an address or ENI is wanted (ipamd looks at it when it
            // creates an ENI or assigns addresses, not while its pool suffices).
            let subnet = view
                .subnet(&subnet_id)
                .await?
                .ok_or_else(|| format!("subnet {subnet_id} not found"))?;
            need = need.div_ceil(per_slot) * per_slot;
            let target = pool_enis
                .iter()
                .find(|e| e.secondary_ips().count() + per_slot <= per_eni)
                .map(|e| e.id.clone());
            let taken = view.taken_in(&subnet.id).await?;
            let eni_id = match target {
                Some(id) if !needs_eni => id,
                _ => {
                    if enis.len() + trunk_slot(&enis) >= itype.max_enis as usize {
                        break;
                    }
                    self.new_eni(
                        view,
                        instance,
                        &subnet.id,
                        &subnet.cidr,
                        &taken,
                        &groups,
                        &enis,
                    )
                    .await?
                }
            };
            let current = enis
                .iter()
                .find(|e| e.id == eni_id)
                .map(|e| e.secondary_ips().count())
                .unwrap_or(0);
            let room = per_eni.saturating_sub(current);
            let taken = view.taken_in(&subnet.id).await?;
            let ips = if settings.prefix_delegation {
                // moto 5.2.5 has no Ipv4Prefix: a /28 is its 16 addresses, assigned one by one.
                cni::free_prefix(&subnet.cidr, &taken).unwrap_or_default()
            } else {
                cni::free_ips(&subnet.cidr, &taken, need.min(room))
            };
            if ips.is_empty() && room > 0 && need > 0 {
                break;
            }
            view.ec2.assign_ips(&eni_id, &ips).await?;
            view.assigned(&eni_id, &ips);
            enis = view.attached(&instance.id).await?;
        }
        let pool_enis: Vec<&Eni> = enis.iter().filter(|e| is_pool(e, &settings)).collect();
        net.attached = enis.len();
        net.max_enis = itype.max_enis as usize;
        net.trunk = enis.iter().find(|e| is_trunk(e)).cloned();
        net.pool = pool_enis
            .iter()
            .flat_map(|e| e.secondary_ips().map(str::to_string))
            .collect();
        // ipamd is healthy once it has its ENIs ("Failed to attach any ENIs for custom
        // networking" otherwise).
        net.ready = !pool_enis.is_empty();
        Ok(net)
    }

    /// Creates and attaches an ENI as the CNI does (`pkg/awsutils/awsutils.go`): in the
    /// subnet, with the groups, described `aws-K8S-<instance-id>`, tagged with the instance
    /// and its creation time, at the next device index, DeleteOnTermination set.
    #[allow(clippy::too_many_arguments)]
    async fn new_eni(
        &self,
        view: &mut NetView<'_>,
        instance: &Instance,
        subnet: &str,
        cidr: &str,
        taken: &[String],
        groups: &[String],
        enis: &[Eni],
    ) -> Result<String, String> {
        let primary = cni::free_ips(cidr, taken, 1)
            .into_iter()
            .next()
            .ok_or_else(|| format!("subnet {subnet} has no free address"))?;
        let mut tags = BTreeMap::new();
        tags.insert(cni::TAG_INSTANCE.to_string(), instance.id.clone());
        tags.insert(cni::TAG_CREATED.to_string(), now_rfc3339());
        let description = format!("{}{}", cni::DESCRIPTION_PREFIX, instance.id);
        let eni = attach_new(
            view,
            instance,
            subnet,
            &primary,
            groups,
            description,
            tags,
            enis,
        )
        .await?;
        Ok(eni.id)
    }

    /// Controllers, scheduler and kubelets over the nodes of this pass; the Deployment and
    /// ReplicaSet controllers only while a cluster is `serving` (`workloads.rs`); the VPC
    /// resource controller's webhook before the scheduler and its branch interfaces after
    /// it (`branches.rs`).
    #[allow(clippy::too_many_arguments)]
    async fn run_pods(
        &self,
        pass: &Pass<'_>,
        side: &KubeSide<'_>,
        mut pods: Vec<Value>,
        nets: &[NodeNet],
        views: &mut [NetView<'_>],
        serving: bool,
        creds: &Credentials,
    ) -> Result<(), String> {
        let kube = &side.kube;
        let all_nodes: BTreeSet<String> = side.nodes.iter().map(name_of).collect();
        // Pod GC: pods bound to a Node that is gone.
        for pod in pods.clone() {
            if let Some(n) = node_name_of(&pod) {
                if !all_nodes.contains(n) {
                    kube.delete(&pod_path(&pod)).await?;
                    pods.retain(|p| pod_path(p) != pod_path(&pod));
                }
            }
        }
        // Deployment and ReplicaSet controllers, garbage collector.
        if serving {
            super::workloads::run(kube, &mut pods).await?;
        }
        // DaemonSet controller.
        for ds in kube.list(DAEMONSETS).await? {
            let uid = ds
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let ns = ds
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string();
            let ds_name = name_of(&ds);
            let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
            let spec = template.get("spec").cloned().unwrap_or(json!({}));
            let host = spec["hostNetwork"] == true;
            let extra = daemon_tolerations(host);
            let on: Vec<&NodeNet> = nets
                .iter()
                .filter(|net| {
                    let labels = net.node.pointer("/metadata/labels");
                    // The aws-node and kube-proxy DaemonSets' affinity keeps them off EKS
                    // Auto Mode nodes (`eks.amazonaws.com/compute-type NotIn [.., auto]`).
                    selector_matches(spec.get("nodeSelector"), labels)
                        && affinity_matches(&spec, labels)
                        && fits_taints(&spec, &net.node, &extra)
                })
                .collect();
            let names: Vec<String> = on.iter().map(|n| n.name.clone()).collect();
            // The rolling update first: its old pods go, and are made again below.
            daemonsets::roll(kube, &ds, &uid, &mut pods, &names).await?;
            let hash = daemonsets::template_hash(&ds);
            let account = spec["serviceAccountName"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            for net in on {
                let has = pods.iter().any(|p| {
                    node_name_of(p) == Some(net.name.as_str())
                        && controller_uid(p).as_deref() == Some(uid.as_str())
                });
                if has {
                    continue;
                }
                let mut pod_spec = spec.clone();
                pod_spec["nodeName"] = json!(net.name);
                let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
                tolerations.extend(extra.iter().cloned());
                pod_spec["tolerations"] = Value::Array(tolerations);
                let mut labels = template
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                labels[daemonsets::HASH_LABEL] = json!(hash);
                let mut pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {
                        // A new template makes pods of new names, as the real generateName does.
                        "name": format!("{ds_name}-{}", suffix(&format!("{uid}/{}/{hash}", net.name))),
                        "namespace": ns,
                        "labels": labels,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                            "name": ds_name, "uid": uid, "controller": true, "blockOwnerDeletion": true}],
                    },
                    "spec": pod_spec,
                    "status": {"phase": "Pending"},
                });
                // The identity webhooks act at creation (`identity.rs`).
                if let Some(c) = creds.node_clusters.get(&net.name) {
                    identity::inject(&mut pod, &identity::webhook_env(c, &ns, &account));
                }
                let path = format!("/api/v1/namespaces/{}/pods", form_encode(&ns));
                kube.post(&path, &pod).await?;
                pods.push(pod);
            }
            let status = daemonsets::status(&ds, &uid, &pods, &names);
            daemonsets::report(kube, &ds, &status).await?;
        }
        // The VPC resource controller: its webhook on the pods about to be scheduled.
        let policies = kube.list(super::vrc::POLICIES).await?;
        let mut accounts = BTreeMap::new();
        self.sgp_webhook(side, &mut pods, &policies, &mut accounts)
            .await?;
        // Scheduler.
        for i in 0..pods.len() {
            if node_name_of(&pods[i]).is_some()
                || pods[i].pointer("/metadata/deletionTimestamp").is_some()
            {
                continue;
            }
            let pod = pods[i].clone();
            let spec = pod.get("spec").cloned().unwrap_or(json!({}));
            let owner = controller_uid(&pod);
            // The extended resource `vpc.amazonaws.com/pod-eni`: a node with a branch
            // interface free (its allocatable less the pods bound there that ask for one).
            let branch = super::vrc::requests_pod_eni(&pod);
            let branch_free = |n: &NodeNet, pods: &[Value]| {
                super::vrc::node_branches(&n.node) > super::vrc::branch_pods_on(pods, &n.name)
            };
            let choice = nets
                .iter()
                .filter(|n| !branch || branch_free(n, &pods))
                .filter(|n| {
                    n.ready && n.node.pointer("/spec/unschedulable") != Some(&Value::Bool(true))
                })
                .filter(|n| {
                    selector_matches(spec.get("nodeSelector"), n.node.pointer("/metadata/labels"))
                })
                .filter(|n| fits_taints(&spec, &n.node, &[]))
                .filter_map(|n| {
                    let here: Vec<&Value> = pods
                        .iter()
                        .filter(|p| node_name_of(p) == Some(n.name.as_str()))
                        .collect();
                    if here.len() >= allocatable_pods(&n.node) {
                        return None;
                    }
                    let same = here
                        .iter()
                        .filter(|p| owner.is_some() && controller_uid(p) == owner)
                        .count();
                    Some(((same, here.len(), n.name.clone()), n))
                })
                .min_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, n)| n.name.clone());
            if let Some(node) = choice {
                kube.merge_patch(&pod_path(&pod), &json!({"spec": {"nodeName": node}}))
                    .await?;
                pods[i]["spec"]["nodeName"] = json!(node);
            } else if pod.pointer("/status/conditions/0/reason") != Some(&json!("Unschedulable")) {
                // kube-scheduler records a failed attempt on the pod (`PodScheduled` False,
                // reason `Unschedulable`, "0/N nodes are available: …";
                // pkg/scheduler/schedule_one.go, `handleSchedulingFailure`), naming an
                // extended resource no node has free as its fit plugin does ("Insufficient
                // <resource>", pkg/scheduler/framework/plugins/noderesources/fit.go).
                let short = nets.iter().filter(|n| !branch_free(n, &pods)).count();
                let message = if branch && short > 0 {
                    format!(
                        "0/{} nodes are available: {short} Insufficient {}.",
                        nets.len(),
                        super::vrc::POD_ENI
                    )
                } else {
                    format!("0/{} nodes are available: no Ready, schedulable node with room for it matches its node selector and tolerations.", nets.len())
                };
                let status = json!({"status": {"phase": "Pending", "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": super::objects::now_rfc3339(),
                }]}});
                kube.merge_patch(&format!("{}/status", pod_path(&pod)), &status)
                    .await?;
            }
        }
        // The VPC resource controller: branch interfaces for the pods just bound.
        self.sgp_branches(pass, side, &mut pods, nets, views, &policies, &mut accounts)
            .await?;
        // Kubelets.
        for net in nets {
            let here: Vec<Value> = pods
                .iter()
                .filter(|p| node_name_of(p) == Some(net.name.as_str()))
                .cloned()
                .collect();
            let mut used: BTreeSet<String> = here
                .iter()
                .filter(|p| !host_network(p))
                .filter_map(|p| pod_ip(p).map(str::to_string))
                .collect();
            let node_ip = node_ip(&net.node);
            for pod in &here {
                if pod_ip(pod).is_some() {
                    continue;
                }
                let ip = if host_network(pod) {
                    Some(node_ip.clone())
                } else if super::vrc::requests_pod_eni(pod) {
                    // The CNI sets such a pod up on the branch its annotation names, and
                    // waits for the annotation (`docs/sgp/workflow.md`, step 6).
                    super::vrc::annotated_branch(pod).map(|(_, ip)| ip)
                } else if net.ready {
                    net.pool.iter().find(|ip| !used.contains(*ip)).cloned()
                } else {
                    None
                };
                // The kubelet first creates the sandbox (`ContainerCreating`); its containers
                // run, and the pod turns Ready, from the next pass on.
                // (`pending_status` below: Pending with the kubelet's hostIP.)
                let creating = pod.pointer("/status/phase") == Some(&json!("Pending"))
                    && pod
                        .pointer("/status/hostIP")
                        .and_then(Value::as_str)
                        .is_some_and(|h| !h.is_empty());
                let status = match &ip {
                    Some(ip) if creating => {
                        used.insert(ip.clone());
                        running_status(pod, ip, &node_ip)
                    }
                    _ if creating => {
                        if net.ready {
                            identity::no_address(kube, pod, &net.name).await?;
                        }
                        continue;
                    }
                    _ => pending_status(pod, &node_ip),
                };
                kube.merge_patch(
                    &format!("{}/status", pod_path(pod)),
                    &json!({"status": status}),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Drains a node before its instance ends: evicts its pods that no DaemonSet owns
    /// (`POST .../pods/NAME/eviction`, which honours PodDisruptionBudgets; a 429 means a
    /// budget forbids it now: retried next pass; a server without the subresource (404):
    /// DELETE). With `force` (the drain kept failing too long) the pods are deleted.
    /// `Ok(false)`: not drained yet.
    pub(super) async fn drain(
        &self,
        side: &KubeSide<'_>,
        node: &str,
        force: bool,
    ) -> Result<bool, String> {
        let pods = pods_on(&side.kube, node).await?;
        let mut drained = true;
        for pod in pods.iter().filter(|p| !owned_by_daemonset(p)) {
            let path = pod_path(pod);
            if force {
                side.kube.delete(&path).await?;
                continue;
            }
            let eviction = json!({
                "apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": name_of(pod), "namespace": pod.pointer("/metadata/namespace")},
            });
            match side
                .kube
                .post(&format!("{path}/eviction"), &eviction)
                .await?
            {
                404 => side.kube.delete(&path).await?,
                429 => drained = false,
                _ => {}
            }
        }
        Ok(drained)
    }

    /// CNI ENIs of instances that are gone (or going) are detached, and `available` ones
    /// deleted `eni_cleanup_ms` after the data plane first saw them so: the CNI's leaked-ENI
    /// cleanup (`pkg/awsutils/awsutils.go`: `available`, tagged with an instance id,
    /// described `aws-K8S-*`). The VPC resource controller's trunk and branches of such an
    /// instance are deleted at once.
    pub(super) async fn clean_enis(
        &self,
        pass: &Pass<'_>,
        obs: &Observed<'_>,
        view: &mut NetView<'_>,
    ) -> Result<(), String> {
        let enis: Vec<Eni> = view
            .all()
            .await?
            .iter()
            .filter(|e| e.tags.contains_key(cni::TAG_INSTANCE))
            .cloned()
            .collect();
        let ec2 = &view.ec2;
        let mut changed = false;
        let window = std::time::Duration::from_millis(pass.cfg.eni_cleanup_ms);
        for eni in enis {
            if !pass.current() {
                return Ok(());
            }
            if eni.description.starts_with(super::vrc::DESCRIPTION_PREFIX) {
                // The VPC resource controller's, of an instance that is gone: the trunk goes
                // with its instance (DeleteOnTermination, which moto does not honour), the
                // branches with the controller's node clean-up (`pkg/aws/ec2/api/cleanup/
                // node_cleanup.go`: the node's interfaces, by its instance-id tag).
                let instance = eni.tags.get(cni::TAG_INSTANCE);
                let alive = obs
                    .instances
                    .iter()
                    .any(|i| Some(&i.id) == instance && !super::ec2::is_ending(&i.state));
                if !alive {
                    changed = true;
                    if let Some(attachment) = &eni.attachment_id {
                        ec2.detach_eni(attachment).await?;
                    }
                    ec2.delete_eni(&eni.id).await?;
                }
                continue;
            }
            if !eni.description.starts_with(cni::DESCRIPTION_PREFIX) {
                continue;
            }
            if let (Some(attachment), Some(instance)) = (&eni.attachment_id, &eni.instance_id) {
                let alive = obs
                    .instances
                    .iter()
                    .any(|i| &i.id == instance && !super::ec2::is_ending(&i.state));
                if !alive && eni.device_index != Some(0) {
                    changed = true;
                    ec2.detach_eni(attachment).await?;
                    let id = eni.id.clone();
                    self.remember(pass, |m| {
                        m.eni_detached.entry(id).or_insert_with(Instant::now);
                    });
                }
                continue;
            }
            if eni.status != "available" {
                continue;
            }
            let since = {
                let mut m = lock(&self.memory);
                *m.eni_detached
                    .entry(eni.id.clone())
                    .or_insert_with(Instant::now)
            };
            if since.elapsed() >= window {
                changed = true;
                ec2.delete_eni(&eni.id).await?;
                let id = eni.id.clone();
                self.remember(pass, |m| {
                    m.eni_detached.remove(&id);
                });
            }
        }
        if changed {
            // Read again by the nodes that follow.
            view.changed();
        }
        Ok(())
    }

    /// Detaches the CNI's ENIs of an instance about to be terminated (moto's terminate
    /// would leave them attached to a terminated instance).
    pub(super) async fn detach_cni_enis(
        &self,
        pass: &Pass<'_>,
        ec2: &Ec2<'_>,
        id: &str,
    ) -> Result<(), String> {
        let enis = ec2
            .enis(&[
                ("attachment.instance-id", vec![id.to_string()]),
                ("tag-key", vec![cni::TAG_INSTANCE.to_string()]),
            ])
            .await?;
        for eni in enis {
            if let Some(attachment) = &eni.attachment_id {
                ec2.detach_eni(attachment).await?;
                let eid = eni.id.clone();
                self.remember(pass, |m| {
                    m.eni_detached.entry(eid).or_insert_with(Instant::now);
                });
            }
        }
        Ok(())
    }
}

fn container_names(pod: &Value) -> Vec<(String, String)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["image"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn running_status(pod: &Value, ip: &str, host_ip: &str) -> Value {
    let now = now_rfc3339();
    let containers: Vec<Value> = container_names(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({"name": name, "image": image, "ready": true, "started": true,
                "restartCount": 0, "state": {"running": {"startedAt": now}}})
        })
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    json!({
        "phase": "Running",
        "podIP": ip, "podIPs": [{"ip": ip}],
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "startTime": now,
        "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"),
            cond("ContainersReady"), cond("PodScheduled")],
        "containerStatuses": containers,
    })
}

fn pending_status(pod: &Value, host_ip: &str) -> Value {
    let now = now_rfc3339();
    let containers: Vec<Value> = container_names(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({"name": name, "image": image, "ready": false, "started": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}})
        })
        .collect();
    json!({
        "phase": "Pending",
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "startTime": now,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
        "containerStatuses": containers,
    })
}

/// The pods bound to a node (a field selector on `spec.nodeName`, as the kubelet lists them).
async fn pods_on(kube: &Kube<'_>, node: &str) -> Result<Vec<Value>, String> {
    kube.list(&format!(
        "{PODS}?fieldSelector={}",
        form_encode(&format!("spec.nodeName={node}"))
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_selectors_and_names() {
        let node = json!({"metadata": {"labels": {"a": "1"}},
            "spec": {"taints": [{"key": "dedicated", "value": "blue", "effect": "NoSchedule"}]}});
        assert!(!fits_taints(&json!({}), &node, &[]));
        let spec =
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "blue"}]});
        assert!(fits_taints(&spec, &node, &[]));
        assert!(fits_taints(
            &json!({"tolerations": [{"operator": "Exists"}]}),
            &node,
            &[]
        ));
        assert!(selector_matches(
            Some(&json!({"a": "1"})),
            node.pointer("/metadata/labels")
        ));
        assert!(!selector_matches(
            Some(&json!({"a": "2"})),
            node.pointer("/metadata/labels")
        ));
        let aws_node = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate", "auto"]}]}]}}}});
        let labels = |l: Value| json!({"metadata": {"labels": l}});
        let managed = labels(json!({"kubernetes.io/os": "linux"}));
        let auto =
            labels(json!({"kubernetes.io/os": "linux", "eks.amazonaws.com/compute-type": "auto"}));
        assert!(affinity_matches(
            &aws_node,
            managed.pointer("/metadata/labels")
        ));
        assert!(!affinity_matches(
            &aws_node,
            auto.pointer("/metadata/labels")
        ));
        assert!(!affinity_matches(&aws_node, None), "In needs the label");
        assert!(affinity_matches(
            &json!({}),
            auto.pointer("/metadata/labels")
        ));
        assert_eq!(suffix("x").len(), 5);
        assert_eq!(suffix("x"), suffix("x"));
        assert_ne!(suffix("x"), suffix("y"));
    }
}
