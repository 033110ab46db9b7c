//! The data plane (option `data_plane`, off by default; needs `kube_url`): what EC2 Auto
//! Scaling, EKS's managed nodegroups and the nodes' kubelets do on their own, run as one
//! background pass of the core's loop (`core::background`).
//!
//! Each pass, for every region and access key clients have used (`core::scopes`):
//!
//! 1. **Observe.** Every instance but the terminated ones (DescribeInstances), every
//!    cluster and nodegroup, described as the proxy reports them ([`Pass::reported`]: a
//!    nodegroup in its CREATING window is `CREATING`, one moved to another launch template
//!    version shows it), and the Nodes of the API server.
//! 2. **Managed nodegroups → instances** (`fleet.rs`). An `ACTIVE` or `UPDATING` nodegroup
//!    gets `desiredSize` instances, launched in moto from its launch template version (if
//!    it has one) into its subnets, and tagged at launch as EKS tags them:
//!    `eks:cluster-name`, `eks:nodegroup-name`, `kubernetes.io/cluster/<cluster>=owned`,
//!    `aws:eks:cluster-name` (EKS user guide, `clusters/management/eks-using-tags.adoc`) and
//!    the group's `aws:autoscaling:groupName`, which ties an instance to one incarnation of
//!    the nodegroup's name. A scale, a new version (new instances first) or a nodegroup that
//!    is gone (DELETING: moto has forgotten it) ends instances: their Node is cordoned and
//!    drained first (evictions that honour PodDisruptionBudgets; forced after
//!    `drain_force_ms`), then the instance is terminated.
//!
//!    **Auto Scaling groups** (`groups.rs`): the groups moto has (self-managed nodes)
//!    keep their desired capacity as in AWS: a member that is not running is replaced
//!    (the health check), launches spread over the group's zones (moto puts them all in
//!    its first subnet), suspended processes are honoured; a client's terminate of a
//!    member is served by the proxy so that moto's own replacement does not happen.
//!
//!    **Karpenter and EKS Auto Mode** (`provisioner.rs`): pods kube-scheduler marked
//!    `Unschedulable` that a NodePool's nodes would take make instances of the pool's
//!    smallest allowed type launch into its class's subnets (an `EC2NodeClass`, or Auto
//!    Mode's `NodeClass` on a cluster with `computeConfig.enabled`), up to `limits.nodes`,
//!    tagged and with user data as Karpenter or Auto Mode launch them; a pool that is gone
//!    has its instances drained and terminated. The pods they need are counted against
//!    the room on the pool's instances, those not joined yet included, so that a pass
//!    launches nothing twice.
//! 3. **Instances → Nodes** (`nodes.rs`). A running instance of a managed nodegroup, one
//!    tagged `kubernetes.io/cluster/<name>=owned` (self-managed and Karpenter's; EKS user
//!    guide, `nodes/worker.adoc`), or an Auto Mode one (`eks:eks-cluster-name`), joins the
//!    API server as a Node once its cluster is `ACTIVE` (or `UPDATING`); the Node of a
//!    terminated or unknown instance is deleted. Its pods are its max pods, decided when it
//!    was launched (`max_pods.rs`; an Auto Mode node's: `auto_mode::max_pods`).
//! 4. **On the nodes** (`pods.rs`): the VPC CNI (on EKS Auto Mode nodes, Auto Mode's own
//!    pod networking, `auto_mode.rs`), the VPC resource controller of security groups for
//!    pods (`vrc.rs`, `branches.rs`), the controllers, scheduler and kubelets.
//!
//! Idempotent and crash-tolerant: what was launched is found again by its tags each pass,
//! so a pass that failed half-way, or a restarted proxy, launches nothing twice. What is
//! kept in memory only saves work or keeps a decision made at launch (the max pods, a
//! nodegroup's default template version); `POST /__proxy/reset` forgets it.

mod auto_mode;
mod autoscaling;
mod branches;
mod cni;
mod daemonsets;
mod ec2;
mod eks;
mod fleet;
mod groups;
mod identity;
mod kube;
mod max_pods;
mod nodes;
mod objects;
mod pods;
mod provisioner;
mod vrc;
mod workloads;
mod xml;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use crate::core::emulator::{BoxFuture, Call, Emulator, Pass};
use crate::core::faults::{self, Reply};
use crate::core::ops::Protocol;
use crate::core::scopes::Scope;
use crate::core::upstream::is_success;
use crate::core::upstream::scoped_headers;
use crate::shared::{lock, xml_first};

use ec2::{Ec2, Instance, InstanceType, Launch, TemplateVersion};
use eks::{Cluster, Eks, Nodegroup};
use kube::Kube;
use max_pods::CniSettings;
use nodes::NodeFacts;

/// The AMI the instances of a nodegroup without a custom AMI run: moto's stand-in for the
/// EKS optimized AMI (EKS resolves the real one per AMI type and release from SSM public
/// parameters, which moto does not hold).
const EKS_AMI: &str = "ami-ekslinux";
/// The instance type when neither the nodegroup nor its launch template names one (EKS
/// user guide, `nodes/launch-templates.adoc`).
const DEFAULT_INSTANCE_TYPE: &str = "t3.medium";

const TAG_CLUSTER: &str = "eks:cluster-name";
const TAG_NODEGROUP: &str = "eks:nodegroup-name";
const TAG_AWS_CLUSTER: &str = "aws:eks:cluster-name";
const TAG_GROUP: &str = "aws:autoscaling:groupName";
const TAG_TEMPLATE_VERSION: &str = "aws:ec2launchtemplate:version";
const CLUSTER_TAG_PREFIX: &str = "kubernetes.io/cluster/";

/// How long an instance the data plane launched still counts in its nodegroup while
/// DescribeInstances does not show it: EC2's API is eventually consistent (EC2 API
/// reference, "Eventual consistency in the Amazon EC2 API"), and a launch that does not show
/// at once must not be made again. moto shows it at once; the bound keeps an instance that
/// never shows (moto reset behind the proxy's back) from counting for ever.
const LAUNCH_GRACE: Duration = Duration::from_secs(10);

/// How long EKS waits for the drain of a node of a deleted nodegroup before Auto Scaling
/// terminates it anyway (user guide, `delete-managed-node-group`).
const DELETE_DRAIN_FORCE: Duration = Duration::from_secs(300);

/// (region, cluster, nodegroup)
type NodegroupKey = (String, String, String);

#[derive(Default)]
pub struct DataPlane {
    memory: Mutex<Memory>,
    /// Held while Auto Scaling groups are changed (`groups.rs`), by a pass or by a client's
    /// terminate the proxy serves, so that neither sees the other's swap half done.
    asg: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Memory {
    /// Each nodegroup's instances, as last seen (found by their tags, or just launched),
    /// by instance id.
    fleets: HashMap<NodegroupKey, BTreeMap<String, Known>>,
    /// The launch template version a nodegroup whose answer names none was first launched
    /// from (the template's default then), keyed with its group name: EKS keeps using it.
    pinned_versions: HashMap<(NodegroupKey, String), String>,
    /// Max pods decided when an instance was launched (by instance id).
    max_pods: HashMap<String, u32>,
    /// Instance type facts, by (region, type): fixed, so kept.
    instance_types: HashMap<(String, String), InstanceType>,
    /// The last problem reported per subject, so that a pass repeating it stays quiet.
    problems: HashMap<String, String>,
    /// The account of each access key (STS GetCallerIdentity): two keys of one account
    /// are one world to act on, not two.
    accounts: HashMap<String, String>,
    /// The VPC CNI settings each node's ipamd read when it started (by instance id).
    cni: HashMap<String, cni::Settings>,
    /// When the data plane first saw each CNI ENI detached (by ENI id).
    eni_detached: HashMap<String, Instant>,
    /// When the data plane first saw each branch interface named by no pod (by ENI id).
    branch_orphaned: HashMap<String, Instant>,
    /// When the drain of each ending instance's Node first failed (by instance id): past
    /// `drain_force_ms` its pods are deleted.
    drain_failing: HashMap<String, Instant>,
    /// Instances launched for Auto Scaling groups, by (region, group): id → (zone, when),
    /// kept for `LAUNCH_GRACE`.
    asg_launches: HashMap<(String, String), BTreeMap<String, (String, Instant)>>,
    /// Instances the provisioner launched, kept for `LAUNCH_GRACE` (by instance id).
    provisioned: HashMap<String, provisioner::Launched>,
    /// The labels decided when a pool's instance was launched (by instance id): its
    /// kubelet registers them (`--node-labels`).
    node_labels: HashMap<String, BTreeMap<String, String>>,
}

/// An instance of a nodegroup, and since when the data plane knows it.
#[derive(Clone, Debug)]
struct Known {
    member: fleet::Member,
    since: Instant,
    /// Whether DescribeInstances has listed it: once it has, an instance it no longer lists
    /// is gone (the observation leaves terminated instances out), not late.
    listed: bool,
}

impl Emulator for DataPlane {
    fn reconcile<'a>(&'a self, pass: &'a Pass<'a>) -> BoxFuture<'a, ()> {
        Box::pin(self.run(pass))
    }

    fn reset(&self) {
        *lock(&self.memory) = Memory::default();
    }

    fn serve<'a>(&'a self, call: &'a Call<'a>) -> BoxFuture<'a, Option<Reply>> {
        Box::pin(async move {
            match self.delete_subnet(call).await {
                Some(reply) => Some(reply),
                None => self.serve_terminate(call).await,
            }
        })
    }
}

/// What one scope looks like as the pass begins (and as its own changes leave it).
struct Observed<'s> {
    scope: &'s Scope,
    instances: Vec<Instance>,
    clusters: Vec<Cluster>,
    nodegroups: Vec<Nodegroup>,
    /// Clusters whose nodegroups were all listed and described: only there is a missing
    /// nodegroup known to be gone.
    listed: BTreeSet<String>,
}

impl Observed<'_> {
    fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// The nodegroup an instance the data plane launched belongs to, if it still exists.
    fn nodegroup_of(&self, i: &Instance) -> Option<&Nodegroup> {
        let (cluster, name, group) = managed_tags(i)?;
        self.nodegroups
            .iter()
            .find(|ng| ng.cluster == cluster && ng.name == name && ng.group_name == group)
    }
}

/// (cluster, nodegroup, group) of an instance launched for a managed nodegroup.
fn managed_tags(i: &Instance) -> Option<(&str, &str, &str)> {
    Some((
        i.tag(TAG_CLUSTER)?,
        i.tag(TAG_NODEGROUP)?,
        i.tag(TAG_GROUP)?,
    ))
}

/// Whether an instance was launched for this incarnation of the nodegroup.
fn belongs(i: &Instance, ng: &Nodegroup) -> bool {
    managed_tags(i)
        == Some((
            ng.cluster.as_str(),
            ng.name.as_str(),
            ng.group_name.as_str(),
        ))
}

/// The cluster a node not in a managed nodegroup joins: the self-managed node's (and
/// Karpenter's) `kubernetes.io/cluster/<name>=owned` (EKS user guide, `nodes/worker.adoc`),
/// else the `eks:eks-cluster-name` of an Auto Mode instance (`provisioner.rs`).
fn tagged_cluster(i: &Instance) -> Option<String> {
    i.tags
        .iter()
        .find_map(|(k, v)| {
            let name = k.strip_prefix(CLUSTER_TAG_PREFIX)?;
            (v == "owned" && !name.is_empty()).then(|| name.to_string())
        })
        .or_else(|| provisioner::auto_mode_cluster(i).map(str::to_string))
}

fn alive(i: &Instance) -> bool {
    matches!(i.state.as_str(), "pending" | "running")
}

/// Per-pass lookups shared by the scopes: the Nodes, and the CNI settings (read at most
/// once a pass, when a launch needs them).
struct KubeSide<'a> {
    kube: Kube<'a>,
    nodes: Vec<Value>,
    cni: Option<CniSettings>,
}

impl KubeSide<'_> {
    /// The name of the Node of an instance, if it has joined.
    fn node_of(&self, instance_id: &str) -> Option<String> {
        self.nodes.iter().find_map(|n| {
            let (_, id) = nodes::parse_provider_id(n.pointer("/spec/providerID")?.as_str()?)?;
            (id == instance_id)
                .then(|| n.pointer("/metadata/name")?.as_str().map(str::to_string))
                .flatten()
        })
    }

    async fn cni(&mut self) -> Result<CniSettings, String> {
        if let Some(c) = &self.cni {
            return Ok(c.clone());
        }
        let ds = self.kube.aws_node().await?;
        let settings = CniSettings::from_daemonset(ds.as_ref());
        self.cni = Some(settings.clone());
        Ok(settings)
    }
}

impl DataPlane {
    /// Reports a problem on stderr once, until it changes or goes away.
    fn problem(&self, subject: &str, message: String) {
        let mut memory = lock(&self.memory);
        if memory.problems.get(subject) != Some(&message) {
            eprintln!("aws-fault-proxy: data plane: {subject}: {message}");
            memory.problems.insert(subject.to_string(), message);
        }
    }

    fn solved(&self, subject: &str) {
        lock(&self.memory).problems.remove(subject);
    }

    /// Writes what a pass learnt into memory, unless `POST /__proxy/reset` came since the
    /// pass began. Checked under the memory lock, which the reset takes to clear it after
    /// counting itself: a write either comes before the clear, or not at all.
    fn remember(&self, pass: &Pass<'_>, write: impl FnOnce(&mut Memory)) {
        let mut memory = lock(&self.memory);
        if pass.current() {
            write(&mut memory);
        }
    }

    async fn run(&self, pass: &Pass<'_>) {
        let Some(url) = pass.cfg.kube_url.as_deref() else {
            return;
        };
        let kube = Kube {
            host: pass.host,
            url,
        };
        let nodes = match kube.nodes().await {
            Ok(n) => {
                self.solved("kube");
                n
            }
            Err(e) => return self.problem("kube", e),
        };
        let mut side = KubeSide {
            kube,
            nodes,
            cni: None,
        };
        // One scope per region and account: two keys of one account must not both launch
        // a nodegroup's instances.
        let mut blind_regions = BTreeSet::new();
        let mut worlds = BTreeSet::new();
        let mut scopes = Vec::new();
        for scope in &pass.scopes {
            match self.account(pass, scope).await {
                Ok(account) => {
                    if worlds.insert((scope.region.clone(), account)) {
                        scopes.push(scope);
                    }
                }
                Err(e) => {
                    blind_regions.insert(scope.region.clone());
                    self.problem(&scope.region, e);
                }
            }
        }
        // Observe every scope first: a region's Nodes are judged against all of its scopes.
        let mut observed = Vec::new();
        for scope in scopes {
            match self.observe(pass, scope).await {
                Ok(o) => {
                    self.solved(&scope.region);
                    observed.push(o);
                }
                Err(e) => {
                    blind_regions.insert(scope.region.clone());
                    self.problem(&scope.region, e);
                }
            }
        }
        for obs in &mut observed {
            self.reconcile_fleets(pass, &mut side, obs).await;
            self.reconcile_groups(pass, obs).await;
        }
        self.provision(pass, &mut side, &mut observed).await;
        self.reconcile_nodes(pass, &mut side, &mut observed, &blind_regions)
            .await;
        for obs in &observed {
            self.finish_drained(pass, obs);
        }
        // Each scope's network interfaces, read once for the cleanup and the nodes' CNI.
        let mut views: Vec<pods::NetView<'_>> = observed
            .iter()
            .map(|o| {
                pods::NetView::new(Ec2 {
                    host: pass.host,
                    scope: o.scope,
                })
            })
            .collect();
        for (obs, view) in observed.iter().zip(views.iter_mut()) {
            let subject = format!("{}/enis", obs.scope.region);
            match self.clean_enis(pass, obs, view).await {
                Ok(()) => self.solved(&subject),
                Err(e) => {
                    view.changed();
                    self.problem(&subject, e);
                }
            }
        }
        // kube-controller-manager runs in the control plane of a cluster that is up.
        let serving = observed
            .iter()
            .any(|o| o.clusters.iter().any(Cluster::serving));
        match self
            .run_nodes(pass, &mut side, &observed, &mut views, serving)
            .await
        {
            Ok(()) => self.solved("pods"),
            Err(e) => self.problem("pods", e),
        }
    }

    /// The account an access key stands for in moto (remembered once known).
    async fn account(&self, pass: &Pass<'_>, scope: &Scope) -> Result<String, String> {
        if let Some(a) = lock(&self.memory).accounts.get(&scope.access_key) {
            return Ok(a.clone());
        }
        let body = Bytes::from_static(b"Action=GetCallerIdentity&Version=2011-06-15");
        let reply = pass
            .host
            .upstream
            .forward(&Method::POST, "/", &scope.headers("sts"), body)
            .await
            .map_err(|e| format!("GetCallerIdentity: {e}"))?;
        let text = String::from_utf8_lossy(&reply.body);
        let account = xml_first(&text, "Account")
            .filter(|_| is_success(reply.status))
            .ok_or_else(|| format!("GetCallerIdentity: moto answered {}", reply.status))?;
        lock(&self.memory)
            .accounts
            .insert(scope.access_key.clone(), account.clone());
        Ok(account)
    }

    async fn observe<'s>(&self, pass: &Pass<'_>, scope: &'s Scope) -> Result<Observed<'s>, String> {
        let ec2 = Ec2 {
            host: pass.host,
            scope,
        };
        let eks = Eks { pass, scope };
        // Terminated instances are left out: their Nodes go as those of unknown instances do,
        // and one a pass launched and then saw listed counts as gone once it is not
        // (`Known::listed`).
        let instances = ec2.live_instances().await?;
        let clusters = eks.clusters().await?;
        let mut nodegroups = Vec::new();
        let mut listed = BTreeSet::new();
        for c in &clusters {
            match eks.nodegroups(&c.name).await {
                Ok(ngs) => {
                    nodegroups.extend(ngs);
                    listed.insert(c.name.clone());
                }
                Err(e) => self.problem(&format!("{}/{}", scope.region, c.name), e),
            }
        }
        Ok(Observed {
            scope,
            instances,
            clusters,
            nodegroups,
            listed,
        })
    }

    /// Step 2: every nodegroup's instances, and the instances of nodegroups that are gone.
    async fn reconcile_fleets(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        obs: &mut Observed<'_>,
    ) {
        let region = obs.scope.region.clone();
        // Instances whose nodegroup is gone: the cluster is gone, or its nodegroups were
        // listed without theirs (deleted, or made anew under the name: another group).
        let orphans: Vec<String> = obs
            .instances
            .iter()
            .filter(|i| alive(i))
            .filter(|i| match managed_tags(i) {
                Some((c, _, _)) => {
                    let cluster_gone = obs.cluster(c).is_none();
                    let listed = obs.listed.contains(c);
                    cluster_gone || (listed && obs.nodegroup_of(i).is_none())
                }
                None => false,
            })
            .map(|i| i.id.clone())
            .collect();
        if !orphans.is_empty() {
            // A deleted nodegroup: EKS lets Auto Scaling force the termination once a node
            // has not drained after 5 minutes (user guide, `delete-managed-node-group`).
            let force = Duration::from_millis(pass.cfg.drain_force_ms).min(DELETE_DRAIN_FORCE);
            self.end_instances(pass, side, obs, &orphans, false, force)
                .await;
        }
        let nodegroups = obs.nodegroups.clone();
        for ng in &nodegroups {
            // EKS launches a nodegroup's instances while it is CREATING, and reports it
            // ACTIVE once they joined (EKS API reference, `Nodegroup.status`).
            if !matches!(ng.status.as_str(), "CREATING" | "ACTIVE" | "UPDATING") {
                continue;
            }
            let subject = format!("{region}/{}/{}", ng.cluster, ng.name);
            match self.reconcile_fleet(pass, side, obs, ng).await {
                Ok(()) => self.solved(&subject),
                Err(e) => self.problem(&subject, e),
            }
            self.mark_joined(pass, side, obs, ng);
        }
        // Nodegroups that are gone have no fleet any more.
        let live: BTreeSet<NodegroupKey> = obs
            .nodegroups
            .iter()
            .map(|ng| (region.clone(), ng.cluster.clone(), ng.name.clone()))
            .collect();
        self.remember(pass, |memory| {
            memory
                .fleets
                .retain(|key, _| key.0 != region || live.contains(key))
        });
    }

    async fn reconcile_fleet(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        obs: &mut Observed<'_>,
        ng: &Nodegroup,
    ) -> Result<(), String> {
        let ec2 = Ec2 {
            host: pass.host,
            scope: obs.scope,
        };
        let key: NodegroupKey = (
            obs.scope.region.clone(),
            ng.cluster.clone(),
            ng.name.clone(),
        );
        let template = match &ng.launch_template {
            Some(lt) => {
                let pinned_key = (key.clone(), ng.group_name.clone());
                let pinned = lock(&self.memory).pinned_versions.get(&pinned_key).cloned();
                // No version in the answer: the template's default one, as EKS uses it
                // (`nodes/create-managed-node-group.adoc`), kept from the first launch.
                let version = lt
                    .version
                    .clone()
                    .or(pinned)
                    .unwrap_or_else(|| "$Default".into());
                let t = ec2
                    .template_version(lt.id.as_deref(), lt.name.as_deref(), &version)
                    .await?;
                if lt.version.is_none() {
                    let number = t.number.clone();
                    self.remember(pass, |memory| {
                        memory.pinned_versions.insert(pinned_key, number);
                    });
                }
                Some(t)
            }
            None => None,
        };
        let mut members: Vec<fleet::Member> = obs
            .instances
            .iter()
            .filter(|i| alive(i) && belongs(i, ng))
            .map(|i| fleet::Member {
                id: i.id.clone(),
                subnet: i.subnet_id.clone(),
                zone: i.availability_zone.clone(),
                launch_time: i.launch_time.clone(),
                template_version: i.tag(TAG_TEMPLATE_VERSION).map(str::to_string),
                joined: side.node_of(&i.id).is_some(),
            })
            .collect();
        // Launched lately but not shown yet (eventual consistency): they count.
        let seen: BTreeSet<String> = obs.instances.iter().map(|i| i.id.clone()).collect();
        let unseen: Vec<Known> = lock(&self.memory)
            .fleets
            .get(&key)
            .into_iter()
            .flat_map(|f| f.values())
            .filter(|k| {
                !seen.contains(&k.member.id) && !k.listed && k.since.elapsed() < LAUNCH_GRACE
            })
            .cloned()
            .collect();
        members.extend(unseen.iter().map(|k| k.member.clone()));
        let result = self
            .apply_plan(pass, side, obs, ng, template.as_ref(), &members)
            .await;
        // The fleet as this pass leaves it: the members still alive, and what it launched.
        let mut fleet: BTreeMap<String, Known> = BTreeMap::new();
        {
            let memory = lock(&self.memory);
            let before = memory.fleets.get(&key);
            for i in obs.instances.iter().filter(|i| alive(i) && belongs(i, ng)) {
                let earlier = before.and_then(|f| f.get(&i.id));
                let since = earlier.map(|k| k.since).unwrap_or_else(Instant::now);
                // Just launched by this pass: RunInstances' answer, not yet a listing.
                let listed = seen.contains(&i.id) || earlier.is_some_and(|k| k.listed);
                let member = fleet::Member {
                    id: i.id.clone(),
                    subnet: i.subnet_id.clone(),
                    zone: i.availability_zone.clone(),
                    launch_time: i.launch_time.clone(),
                    template_version: i.tag(TAG_TEMPLATE_VERSION).map(str::to_string),
                    joined: false,
                };
                fleet.insert(
                    i.id.clone(),
                    Known {
                        member,
                        since,
                        listed,
                    },
                );
            }
        }
        for k in unseen {
            fleet.entry(k.member.id.clone()).or_insert(k);
        }
        self.remember(pass, |memory| {
            memory.fleets.insert(key, fleet);
        });
        result
    }

    /// Carries out what `fleet::plan` decides for one nodegroup.
    async fn apply_plan(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        obs: &mut Observed<'_>,
        ng: &Nodegroup,
        template: Option<&TemplateVersion>,
        members: &[fleet::Member],
    ) -> Result<(), String> {
        let ec2 = Ec2 {
            host: pass.host,
            scope: obs.scope,
        };
        let zones = ec2.subnet_zones(&ng.subnets).await?;
        let distinct: BTreeSet<&String> = zones.values().collect();
        let max_unavailable = match (ng.max_unavailable, ng.max_unavailable_percentage) {
            (Some(n), _) => usize::try_from(n).unwrap_or(1),
            (None, Some(pct)) => {
                let pct = usize::try_from(pct).unwrap_or(100);
                (ng.desired_size * pct).div_ceil(100)
            }
            (None, None) => 1,
        };
        let target = fleet::Target {
            desired: ng.desired_size,
            subnets: ng.subnets.clone(),
            zones: distinct.len().max(1),
            template_version: template.map(|t| t.number.clone()),
            max_unavailable: max_unavailable.max(1),
        };
        let plan = fleet::plan(&target, members);
        if !plan.terminate.is_empty() {
            let force = Duration::from_millis(pass.cfg.drain_force_ms);
            self.end_instances(pass, side, obs, &plan.terminate, plan.replacing, force)
                .await;
        }
        if plan.launch.is_empty() {
            return Ok(());
        }
        // What every new instance gets, decided now: at launch.
        let instance_type = template
            .and_then(|t| t.instance_type.clone())
            .or_else(|| ng.instance_types.first().cloned())
            .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_string());
        let max_pods = self
            .managed_max_pods(pass, obs.scope, side, ng, template)
            .await?;
        let security_groups = match template {
            Some(t) if !t.security_group_ids.is_empty() => Vec::new(),
            // EKS applies the cluster security group unless the template names groups
            // (`nodes/launch-templates.adoc`).
            _ => obs
                .cluster(&ng.cluster)
                .and_then(|c| c.security_group.clone())
                .into_iter()
                .collect(),
        };
        let mut tags = BTreeMap::new();
        tags.insert(TAG_CLUSTER.to_string(), ng.cluster.clone());
        tags.insert(TAG_NODEGROUP.to_string(), ng.name.clone());
        tags.insert(TAG_AWS_CLUSTER.to_string(), ng.cluster.clone());
        tags.insert(TAG_GROUP.to_string(), ng.group_name.clone());
        tags.insert(
            format!("{CLUSTER_TAG_PREFIX}{}", ng.cluster),
            "owned".to_string(),
        );
        for subnet in plan.launch {
            if !pass.current() {
                return Ok(());
            }
            let launch = Launch {
                subnet_id: subnet,
                instance_type: instance_type.clone(),
                image_id: match template {
                    Some(t) if t.image_id.is_some() => None,
                    _ => Some(EKS_AMI.to_string()),
                },
                template: template.map(|t| (t.template_id.clone(), t.number.clone())),
                security_group_ids: security_groups.clone(),
                tags: tags.clone(),
                user_data: None,
            };
            let instance = ec2.run(&launch).await?;
            let member = fleet::Member {
                id: instance.id.clone(),
                subnet: instance.subnet_id.clone(),
                zone: instance.availability_zone.clone(),
                launch_time: instance.launch_time.clone(),
                template_version: instance.tag(TAG_TEMPLATE_VERSION).map(str::to_string),
                joined: false,
            };
            let key = (
                obs.scope.region.clone(),
                ng.cluster.clone(),
                ng.name.clone(),
            );
            let id = instance.id.clone();
            self.remember(pass, |memory| {
                memory.max_pods.insert(id.clone(), max_pods);
                let known = Known {
                    member,
                    since: Instant::now(),
                    listed: false,
                };
                memory.fleets.entry(key).or_default().insert(id, known);
            });
            obs.instances.push(instance);
        }
        Ok(())
    }

    /// Clears a nodegroup's CREATING/UPDATING mark (`core::windows`) once it has
    /// `desiredSize` live instances, all on its launch template version and all joined
    /// as Nodes, and none of an earlier version left.
    fn mark_joined(
        &self,
        pass: &Pass<'_>,
        side: &KubeSide<'_>,
        obs: &Observed<'_>,
        ng: &Nodegroup,
    ) {
        let key =
            crate::core::windows::ResourceKey::nodegroup(&obs.scope.region, &ng.cluster, &ng.name);
        if lock(&pass.host.windows).joining(&key).is_none() {
            return;
        }
        let pinned = lock(&self.memory)
            .pinned_versions
            .get(&(
                (
                    obs.scope.region.clone(),
                    ng.cluster.clone(),
                    ng.name.clone(),
                ),
                ng.group_name.clone(),
            ))
            .cloned();
        let target = ng
            .launch_template
            .as_ref()
            .and_then(|t| t.version.clone())
            .or(pinned);
        let members: Vec<&Instance> = obs
            .instances
            .iter()
            .filter(|i| alive(i) && belongs(i, ng))
            .collect();
        let on_target = |i: &&Instance| {
            target.is_none() || i.tag(TAG_TEMPLATE_VERSION).map(str::to_string) == target
        };
        let done = members.len() == ng.desired_size
            && members.iter().all(on_target)
            && members.iter().all(|i| side.node_of(&i.id).is_some());
        if done && pass.current() {
            lock(&pass.host.windows).clear_joining(&key);
        }
    }

    /// Ends the DELETING hold (`core::windows`) of each deleted nodegroup of this scope's
    /// region none of whose instances is alive any more.
    fn finish_drained(&self, pass: &Pass<'_>, obs: &Observed<'_>) {
        let drained: Vec<crate::core::windows::ResourceKey> = lock(&pass.host.windows)
            .draining_in(&obs.scope.region)
            .filter(|key| {
                let [cluster, ng] = key.names.as_slice() else {
                    return false;
                };
                !obs.instances.iter().any(|i| {
                    alive(i) && managed_tags(i).is_some_and(|(c, n, _)| c == cluster && n == ng)
                })
            })
            .cloned()
            .collect();
        if pass.current() {
            let mut windows = lock(&pass.host.windows);
            for key in &drained {
                windows.finish_draining(key);
            }
        }
    }

    /// Max pods for a new instance of a managed nodegroup (see `max_pods.rs`).
    async fn managed_max_pods(
        &self,
        pass: &Pass<'_>,
        scope: &Scope,
        side: &mut KubeSide<'_>,
        ng: &Nodegroup,
        template: Option<&TemplateVersion>,
    ) -> Result<u32, String> {
        if let Some(n) = template
            .and_then(|t| t.user_data.as_deref())
            .and_then(max_pods::from_user_data)
        {
            return Ok(n);
        }
        if let Some(t) = template.filter(|t| t.image_id.is_some()) {
            // A custom AMI: its own default, for the type it launches.
            let name = t
                .instance_type
                .clone()
                .or_else(|| ng.instance_types.first().cloned())
                .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_string());
            let types = self.instance_types(pass, scope, &[name]).await?;
            return types
                .first()
                .map(max_pods::eni_limit)
                .ok_or_else(|| "no instance type".to_string());
        }
        let names: Vec<String> = match template.and_then(|t| t.instance_type.clone()) {
            Some(t) => vec![t],
            None if ng.instance_types.is_empty() => vec![DEFAULT_INSTANCE_TYPE.to_string()],
            None => ng.instance_types.clone(),
        };
        let types = self.instance_types(pass, scope, &names).await?;
        let cni = side.cni().await?;
        types
            .iter()
            .map(|t| max_pods::calculator(t, &cni))
            .min()
            .ok_or_else(|| "no instance type".to_string())
    }

    /// Instance type facts, from memory or DescribeInstanceTypes; `Err` if one is unknown.
    async fn instance_types(
        &self,
        pass: &Pass<'_>,
        scope: &Scope,
        names: &[String],
    ) -> Result<Vec<InstanceType>, String> {
        let region = scope.region.clone();
        let missing: Vec<String> = {
            let memory = lock(&self.memory);
            names
                .iter()
                .filter(|n| {
                    !memory
                        .instance_types
                        .contains_key(&(region.clone(), (*n).clone()))
                })
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let found = Ec2 {
                host: pass.host,
                scope,
            }
            .instance_types(&missing)
            .await?;
            let mut memory = lock(&self.memory);
            for t in found {
                memory
                    .instance_types
                    .insert((region.clone(), t.name.clone()), t);
            }
        }
        let memory = lock(&self.memory);
        names
            .iter()
            .map(|n| {
                memory
                    .instance_types
                    .get(&(region.clone(), n.clone()))
                    .cloned()
                    .ok_or_else(|| format!("instance type {n} is unknown to EC2"))
            })
            .collect()
    }

    /// Drains (cordons) the Nodes of instances and terminates them; the observation then
    /// shows them terminated.
    async fn end_instances(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        obs: &mut Observed<'_>,
        ids: &[String],
        replacing: bool,
        force_after: Duration,
    ) {
        let subject = format!("{}/terminate", obs.scope.region);
        for id in ids {
            if !pass.current() {
                return;
            }
            if let Some(node) = side.node_of(id) {
                if let Err(e) = side.kube.cordon(&node, replacing).await {
                    self.problem(&format!("node {node}"), e);
                }
            }
        }
        if !pass.current() {
            return;
        }
        let ec2 = Ec2 {
            host: pass.host,
            scope: obs.scope,
        };
        // Drained first: EKS evicts the pods, respecting PodDisruptionBudgets (user guide,
        // `nodes/managed-node-update-behavior.adoc`); an instance whose pods cannot all go
        // yet waits for a later pass, until `force_after` has passed since its drain first
        // failed: then its pods are deleted (EKS: 15 minutes, then forced). Then the CNI's
        // ENIs are detached (moto's terminate would leave them attached to a terminated
        // instance).
        let mut ready = Vec::new();
        for id in ids {
            if let Some(node) = side.node_of(id) {
                let force = lock(&self.memory)
                    .drain_failing
                    .get(id)
                    .is_some_and(|since| since.elapsed() >= force_after);
                match self.drain(side, &node, force).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let id = id.clone();
                        self.remember(pass, |m| {
                            m.drain_failing.entry(id).or_insert_with(Instant::now);
                        });
                        continue;
                    }
                    Err(e) => {
                        self.problem(&format!("node {node}"), e);
                        continue;
                    }
                }
            }
            if let Err(e) = self.detach_cni_enis(pass, &ec2, id).await {
                self.problem(&format!("instance {id}"), e);
                continue;
            }
            ready.push(id.clone());
        }
        let ids = ready.as_slice();
        if ids.is_empty() {
            return;
        }
        match ec2.terminate(ids).await {
            Ok(()) => {
                self.solved(&subject);
                self.remember(pass, |m| m.drain_failing.retain(|k, _| !ids.contains(k)));
                for i in obs.instances.iter_mut().filter(|i| ids.contains(&i.id)) {
                    i.state = "terminated".to_string();
                }
            }
            Err(e) => self.problem(&subject, e),
        }
    }

    /// Step 3: Nodes for running instances of a serving cluster, none for instances that
    /// are gone.
    async fn reconcile_nodes(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        observed: &mut [Observed<'_>],
        blind_regions: &BTreeSet<String>,
    ) {
        let regions: BTreeSet<String> = observed
            .iter()
            .map(|o| o.scope.region.clone())
            .filter(|r| !blind_regions.contains(r))
            .collect();
        let known: BTreeSet<String> = observed
            .iter()
            .flat_map(|o| o.instances.iter().map(|i| i.id.clone()))
            .collect();
        let ending: BTreeSet<String> = observed
            .iter()
            .flat_map(|o| o.instances.iter())
            .filter(|i| ec2::is_ending(&i.state))
            .map(|i| i.id.clone())
            .collect();
        for name in nodes::stale_nodes(&side.nodes, &regions, &known, &ending) {
            if !pass.current() {
                return;
            }
            match side.kube.delete_node(&name).await {
                Ok(()) => side
                    .nodes
                    .retain(|n| n.pointer("/metadata/name").and_then(Value::as_str) != Some(&name)),
                Err(e) => self.problem(&format!("node {name}"), e),
            }
        }
        for obs in observed.iter() {
            let joining: Vec<&Instance> = obs
                .instances
                .iter()
                .filter(|i| i.state == "running" && side.node_of(&i.id).is_none())
                .collect();
            for i in joining {
                let facts = match self.node_facts(pass, side, obs, i).await {
                    Ok(Some(f)) => f,
                    Ok(None) => continue,
                    Err(e) => {
                        self.problem(&format!("instance {}", i.id), e);
                        continue;
                    }
                };
                if !pass.current() {
                    return;
                }
                let node = nodes::node_object(&facts);
                match side.kube.create_node(&node).await {
                    Ok(()) => {
                        self.solved(&format!("instance {}", i.id));
                        side.nodes.push(node);
                    }
                    Err(e) => self.problem(&format!("instance {}", i.id), e),
                }
            }
        }
    }

    /// The Node an instance registers, or `None` if it does not join: it belongs to no
    /// managed nodegroup and has no `kubernetes.io/cluster/<name>=owned` tag, or its
    /// cluster is not serving.
    async fn node_facts(
        &self,
        pass: &Pass<'_>,
        side: &mut KubeSide<'_>,
        obs: &Observed<'_>,
        i: &Instance,
    ) -> Result<Option<NodeFacts>, String> {
        let managed = obs.nodegroup_of(i);
        let cluster_name = match (managed, managed_tags(i)) {
            (Some(ng), _) => ng.cluster.clone(),
            // Launched for a nodegroup that is gone: it is being terminated.
            (None, Some(_)) => return Ok(None),
            (None, None) => match tagged_cluster(i) {
                Some(name) => name,
                None => return Ok(None),
            },
        };
        if !obs.cluster(&cluster_name).is_some_and(Cluster::serving) {
            return Ok(None);
        }
        let scope = obs.scope;
        let types = self
            .instance_types(pass, scope, std::slice::from_ref(&i.instance_type))
            .await?;
        let itype = types.first().ok_or("no instance type")?;
        let remembered = lock(&self.memory).max_pods.get(&i.id).copied();
        let max_pods = match (remembered, managed) {
            (Some(n), _) => n,
            // Launched before this proxy started: decided now, from its template version.
            (None, Some(ng)) => {
                let template = match &ng.launch_template {
                    Some(lt) => {
                        let version = i
                            .tag(TAG_TEMPLATE_VERSION)
                            .map(str::to_string)
                            .or_else(|| lt.version.clone())
                            .unwrap_or_else(|| "$Default".into());
                        Some(
                            Ec2 {
                                host: pass.host,
                                scope,
                            }
                            .template_version(lt.id.as_deref(), lt.name.as_deref(), &version)
                            .await?,
                        )
                    }
                    None => None,
                };
                self.managed_max_pods(pass, scope, side, ng, template.as_ref())
                    .await?
            }
            // Auto Mode: EKS decides it.
            (None, None) if provisioner::auto_mode_cluster(i).is_some() => {
                // Launched before this proxy started: from its NodeClass as it is now.
                let class = match i.tag(provisioner::AUTO_NODE_CLASS_TAG) {
                    Some(c) => {
                        let path = format!(
                            "{}/{}",
                            provisioner::NODE_CLASSES,
                            crate::shared::form_encode(c)
                        );
                        side.kube.get(&path).await?
                    }
                    None => None,
                };
                let terms = class
                    .as_ref()
                    .map(auto_mode::PodTerms::of)
                    .unwrap_or_default();
                auto_mode::max_pods(itype, &terms)
            }
            // Self-managed (Karpenter's too): what its AMI makes of its user data.
            (None, None) => {
                let user_data = Ec2 {
                    host: pass.host,
                    scope,
                }
                .user_data(&i.id)
                .await?;
                user_data
                    .as_deref()
                    .and_then(max_pods::from_user_data)
                    .unwrap_or_else(|| max_pods::eni_limit(itype))
            }
        };
        self.remember(pass, |memory| {
            memory.max_pods.insert(i.id.clone(), max_pods);
        });
        let mut labels = BTreeMap::new();
        if provisioner::pool_of(i).is_some() {
            let remembered = lock(&self.memory).node_labels.get(&i.id).cloned();
            labels.extend(
                remembered
                    .or_else(|| provisioner::labels_from_tags(i))
                    .unwrap_or_default(),
            );
        }
        if let Some(ng) = managed {
            labels.extend(ng.labels.clone());
            labels.insert("eks.amazonaws.com/nodegroup".into(), ng.name.clone());
            labels.insert(
                "eks.amazonaws.com/capacityType".into(),
                ng.capacity_type.clone(),
            );
            labels.insert(
                "eks.amazonaws.com/nodegroup-image".into(),
                i.image_id.clone(),
            );
            if let (Some(id), Some(version)) = (
                i.tag("aws:ec2launchtemplate:id"),
                i.tag(TAG_TEMPLATE_VERSION),
            ) {
                labels.insert(
                    "eks.amazonaws.com/sourceLaunchTemplateId".into(),
                    id.to_string(),
                );
                labels.insert(
                    "eks.amazonaws.com/sourceLaunchTemplateVersion".into(),
                    version.to_string(),
                );
            }
        }
        Ok(Some(NodeFacts {
            name: i.private_dns_name.clone(),
            instance_id: i.id.clone(),
            zone: i.availability_zone.clone(),
            region: scope.region.clone(),
            private_ip: i.private_ip.clone(),
            instance_type: i.instance_type.clone(),
            arch: nodes::kubernetes_arch(&itype.architectures),
            max_pods,
            labels,
            taints: managed.map(|ng| ng.taints.clone()).unwrap_or_default(),
        }))
    }
}

impl DataPlane {
    /// DeleteSubnet of a subnet that still has network interfaces (available or in use)
    /// fails as in EC2: 400 `DependencyViolation` (EC2 API reference, DeleteSubnet: "You
    /// must terminate all running instances in the subnet before you can delete the
    /// subnet"). moto 5.2.5 deletes it anyway, and keeps the primary interface of a
    /// terminated instance attached, which EC2 deletes: those are not counted.
    async fn delete_subnet(&self, call: &Call<'_>) -> Option<Reply> {
        let (info, cfg) = (call.info, call.cfg);
        if !cfg.data_plane || info.protocol != Protocol::Ec2Query || info.op != "DeleteSubnet" {
            return None;
        }
        let subnet = info.param("SubnetId")?.to_string();
        let headers = scoped_headers(call.headers, &info.region, "ec2");
        let body = format!(
            "Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=subnet-id&Filter.1.Value.1={}",
            crate::shared::form_encode(&subnet)
        );
        let text = call.host.upstream.ec2_call(&headers, body).await.ok()?;
        let root = xml::Element::parse(&text).ok()?;
        let enis: Vec<ec2::Eni> = root
            .items("networkInterfaceSet")
            .filter_map(ec2::Eni::from_xml)
            .collect();
        let owners: Vec<String> = enis.iter().filter_map(|e| e.instance_id.clone()).collect();
        let mut ended = BTreeSet::new();
        if !owners.is_empty() {
            let mut body = "Action=DescribeInstances&Version=2016-11-15".to_string();
            for (i, id) in owners.iter().enumerate() {
                body.push_str(&format!(
                    "&InstanceId.{}={}",
                    i + 1,
                    crate::shared::form_encode(id)
                ));
            }
            if let Ok(text) = call.host.upstream.ec2_call(&headers, body).await {
                if let Ok(root) = xml::Element::parse(&text) {
                    for r in root.items("reservationSet") {
                        for i in r.items("instancesSet") {
                            let state = i.text_at(&["instanceState", "name"]).unwrap_or_default();
                            if ec2::is_ending(state) {
                                ended.extend(i.text_at(&["instanceId"]).map(str::to_string));
                            }
                        }
                    }
                }
            }
        }
        let blocking = enis.iter().any(|e| match &e.instance_id {
            Some(i) => !ended.contains(i),
            None => true,
        });
        blocking.then(|| {
            faults::ec2_error(
                400,
                "DependencyViolation",
                &format!("The subnet '{subnet}' has dependencies and cannot be deleted."),
            )
        })
    }
}
