//! `eksnet roll`: moves the nodes that keep node-subnet addresses (see `existing`) onto
//! custom networking, whoever owns them. Per node: cordon, evict its pods through the
//! Eviction API (a PodDisruptionBudget's 429 is waited out, never forced), wait until the
//! evicted pods run elsewhere, terminate the instance so that its owner brings a new one,
//! and wait for a new node of that owner that is Ready and on custom networking. A node of
//! an Auto Scaling group with room (self-managed, or the group behind a managed nodegroup,
//! scaled directly as Cluster Autoscaler scales it) is surged instead, as EKS's own nodegroup
//! update does: the group's desired capacity raised by one, the new node Ready first, then
//! the drain, then the old instance terminated with the desired capacity lowered again; so
//! a group of one node, or a cluster with no spare room, can be rolled too. Up to
//! `max_unavailable` nodes are in flight at once, a new one starting as soon as one ends
//! (so 20 nodes two at a time take about ten replacements' time, not more).
//!
//! Progress is in the state as one record per node (`roll/CLUSTER/NODE`), written before
//! each step it announces: a rerun after a crash or Ctrl-C finishes the nodes under way
//! first, never moves a node twice, and finds a replacement that came while it was not
//! running by its creation time.

use super::existing::{self, ExistingNode, Owner, Survey};
use crate::cloud::aws::AwsClients;
use crate::resources::drain::{
    active, budget_covers, evictable, list_pods, never_allows, object_name, on_node, Drainer,
};
use crate::resources::ResourceError;
use crate::spec::Spec;
use crate::state::StateStore;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum RollError {
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// What stops the roll before it touches a node.
    #[error("{0}")]
    Refused(String),
    /// A node that did not finish in time, or a step that failed.
    #[error("{0}")]
    Node(String),
}

fn kube_err(op: &'static str) -> impl Fn(kube::Error) -> RollError {
    move |e| RollError::Resource(crate::cloud::kube::error(op, e).into())
}

pub struct Options {
    pub max_unavailable: usize,
    /// Add a node before the drain where the node's Auto Scaling group has room.
    pub surge: bool,
    pub node_timeout: Duration,
    /// Between two looks at the cluster.
    pub pause: Duration,
}

/// Where one node is; kept in the state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub node: String,
    pub instance_id: Option<String>,
    pub owner: Owner,
    pub zone: Option<String>,
    /// `surging` (its group's desired capacity being raised), `surged` (waiting for the new
    /// node), `draining` (cordoned, pods being evicted), `terminated` (waiting for its
    /// replacement, unless surged), `done`.
    pub phase: String,
    /// The group raised by one for this node's replacement, before its drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surge: Option<Surge>,
    /// When the instance was terminated (RFC 3339): its replacement is newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// A surge: the Auto Scaling group, the desired capacity it was raised to, and when (the new
/// node is newer).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Surge {
    pub group: String,
    pub desired: i32,
    pub at: String,
}

fn key(cluster: &str, node: &str) -> String {
    format!("roll/{cluster}/{node}")
}

/// The records of one cluster's roll, by node.
pub fn records(store: &StateStore, cluster: &str) -> Result<BTreeMap<String, Record>, RollError> {
    let prefix = format!("roll/{cluster}/");
    Ok(store
        .records()?
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(_, v)| serde_json::from_value::<Record>(v).ok())
        .map(|r| (r.node.clone(), r))
        .collect())
}

/// Forgets a finished roll's records.
pub async fn clear(store: &StateStore, cluster: &str) -> Result<(), RollError> {
    for node in records(store, cluster)?.into_keys() {
        store.put_record(&key(cluster, &node), None).await?;
    }
    Ok(())
}

/// What the roll will do: the nodes under way first, then the rest by owner, zone, name.
#[derive(Debug, Default, serde::Serialize)]
pub struct Order {
    pub resumed: Vec<Record>,
    pub nodes: Vec<ExistingNode>,
    /// Nodes of the spec's own nodegroups: `apply --replace` moves them.
    pub in_spec: Vec<ExistingNode>,
    /// Nodes already moved by an earlier run of this roll.
    pub done: usize,
}

pub fn order(survey: &Survey, records: &BTreeMap<String, Record>) -> Order {
    let mut o = Order {
        resumed: records
            .values()
            .filter(|r| r.phase != "done")
            .cloned()
            .collect(),
        done: records.values().filter(|r| r.phase == "done").count(),
        ..Order::default()
    };
    for n in survey.nodes.iter().filter(|n| n.needs_move()) {
        if records.contains_key(&n.name) {
            continue;
        }
        if n.in_spec.is_some() {
            o.in_spec.push(n.clone());
        } else {
            o.nodes.push(n.clone());
        }
    }
    o
}

/// The reasons the roll cannot start: nothing would replace a node, its replacement would not
/// get custom networking either, its group cannot launch, or a budget can never allow it.
pub async fn refusals(
    aws: &AwsClients,
    client: &kube::Client,
    survey: &Survey,
    order: &Order,
    aim: &existing::Aim,
    max_unavailable: usize,
    surge: bool,
) -> Result<Vec<String>, RollError> {
    let mut out = Vec::new();
    if order.nodes.is_empty() && order.resumed.is_empty() {
        return Ok(out);
    }
    let on = custom_networking_on(client).await?;
    if on && *aim != existing::Aim::Onto {
        out.push(format!(
            "custom networking is still on in cluster {}'s VPC CNI: new nodes would take addresses from the pod subnets again",
            survey.cluster
        ));
    }
    if !on && *aim == existing::Aim::Onto {
        out.push(format!(
            "custom networking is off in cluster {}'s VPC CNI (AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG is not \"true\" on aws-node): new nodes would get node-subnet addresses too; run `eksnet apply` with this spec first",
            survey.cluster
        ));
    }
    for n in &order.nodes {
        if n.owner == Owner::Unknown {
            out.push(format!(
                "node {} has no owner eksnet knows (no managed nodegroup, Auto Scaling group or Karpenter pool): nothing would bring a new node when its instance ends; move its pods and replace it by hand",
                n.name
            ));
        }
        if let Some(r) = n.reasons.iter().find(|r| r.contains("ENIConfig")) {
            out.push(format!(
                "node {}: {r}; its replacement would not start its CNI (NotReady): run `eksnet apply` with this spec first so that its ENIConfig exists",
                n.name
            ));
        }
    }
    // Each moving node's Auto Scaling group: its own (self-managed), or the one behind its
    // managed nodegroup when Auto Scaling shows it.
    let ids: Vec<String> = order
        .nodes
        .iter()
        .filter_map(|n| n.instance_id.clone())
        .collect();
    let group_of = groups_of(aws, &ids).await?;
    let mut groups: BTreeSet<String> = group_of.values().cloned().collect();
    let self_managed: BTreeSet<String> = order
        .nodes
        .iter()
        .filter_map(|n| match &n.owner {
            Owner::AutoScaling(g) => Some(g.clone()),
            _ => None,
        })
        .collect();
    groups.extend(self_managed.iter().cloned());
    let found = describe_groups(aws, &groups).await?;
    for g in &self_managed {
        if !found.contains_key(g) {
            out.push(format!(
                "Auto Scaling group {g} was not found: nothing would replace its nodes"
            ));
        }
    }
    for (g, asg) in &found {
        let suspended: Vec<&str> = asg
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name())
            .filter(|p| matches!(*p, "Launch" | "ReplaceUnhealthy" | "Terminate"))
            .collect();
        if !suspended.is_empty() {
            out.push(format!(
                "Auto Scaling group {g} has {} suspended: it would not replace a terminated instance; resume them first (aws autoscaling resume-processes)",
                suspended.join(", ")
            ));
        }
        if asg.desired_capacity().unwrap_or(0) < 1 || asg.max_size().unwrap_or(0) < 1 {
            out.push(format!(
                "Auto Scaling group {g} has no room for a node (desired {}, max {}): it would not replace a terminated instance",
                asg.desired_capacity().unwrap_or(0),
                asg.max_size().unwrap_or(0)
            ));
        }
    }
    // A node that cannot be surged is drained before its replacement comes: its evicted pods
    // need a node that stays.
    let surged = |n: &ExistingNode| {
        surge
            && n.instance_id
                .as_ref()
                .and_then(|i| group_of.get(i))
                .and_then(|g| found.get(g))
                .is_some_and(room)
    };
    // Karpenter launches a node for evicted pods no node has room for.
    let drained_first = order
        .nodes
        .iter()
        .filter(|n| !surged(n) && replaced_one_for_one(&n.owner))
        .count();
    let schedulable = survey
        .nodes
        .iter()
        .filter(|n| n.ready && !n.unschedulable)
        .count();
    let out_at_once = max_unavailable.min(drained_first);
    if order.resumed.is_empty() && drained_first > 0 && schedulable <= out_at_once {
        let full: Vec<String> = found
            .iter()
            .filter(|(_, a)| !room(a))
            .map(|(g, a)| {
                format!(
                    "{g} (desired {}, max {})",
                    a.desired_capacity().unwrap_or(0),
                    a.max_size().unwrap_or(0)
                )
            })
            .collect();
        let why_not_surged = if !surge {
            "--no-surge was given".to_string()
        } else if full.is_empty() {
            "their owners are no Auto Scaling group eksnet can raise".to_string()
        } else {
            format!("their groups are at their max size: {}", full.join(", "))
        };
        out.push(format!(
            "cluster {} has {schedulable} schedulable node(s) and {out_at_once} would be drained at once before a replacement comes ({why_not_surged}): no node would be left to take the evicted pods, and their budgets would block the drain; raise the groups' max size by one, scale a group up first, or lower --max-unavailable",
            survey.cluster
        ));
    }
    // A budget that can never allow an eviction would stop the roll half-way.
    let moving: BTreeSet<&str> = order.nodes.iter().map(|n| n.name.as_str()).collect();
    let pods = list_pods(client).await?;
    let pdbs: Vec<PodDisruptionBudget> = Api::<PodDisruptionBudget>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list poddisruptionbudgets"))?
        .items;
    let mut named = BTreeSet::new();
    for pod in pods
        .iter()
        .filter(|p| on_node(p).is_some_and(|n| moving.contains(n)) && evictable(p))
    {
        for pdb in pdbs.iter().filter(|b| budget_covers(b, pod)) {
            let covered = pods
                .iter()
                .filter(|p| budget_covers(pdb, p) && active(p))
                .count();
            if let Some(why) = never_allows(pdb, covered) {
                let name = object_name(&pdb.metadata);
                if named.insert(name.clone()) {
                    out.push(format!(
                        "PodDisruptionBudget {name} can never allow an eviction ({why}), so pod {} could not leave its node; change the budget first",
                        object_name(&pod.metadata)
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// What a node without a one-for-one replacement is moved to, in `old → new`.
pub const NO_REPLACEMENT: &str = "(none: Karpenter launches nodes for pods left pending)";

/// Whether the owner brings back one node for each instance that ends. A group keeps its
/// desired capacity; Karpenter launches only for pods left pending (its docs, "Disruption"),
/// and the drain already waited for the evicted pods, so a Karpenter node is done once its
/// instance ends: waiting for a newer node of its pool could wait for ever.
fn replaced_one_for_one(owner: &Owner) -> bool {
    !matches!(owner, Owner::Karpenter(_))
}

/// Whether a group can take one more instance now: below its max size and launching.
fn room(asg: &aws_sdk_autoscaling::types::AutoScalingGroup) -> bool {
    let launching = !asg
        .suspended_processes()
        .iter()
        .any(|p| p.process_name() == Some("Launch"));
    launching && asg.desired_capacity().unwrap_or(0) < asg.max_size().unwrap_or(0)
}

/// Instance id → the Auto Scaling group it is in (DescribeAutoScalingInstances, 50 at a
/// time); an instance in no group Auto Scaling shows is left out.
async fn groups_of(
    aws: &AwsClients,
    ids: &[String],
) -> Result<BTreeMap<String, String>, RollError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(50) {
        let found = aws
            .autoscaling
            .describe_auto_scaling_instances()
            .set_instance_ids(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| crate::resources::aws_error("DescribeAutoScalingInstances", e))?;
        for i in found.auto_scaling_instances() {
            if let (Some(id), Some(g)) = (i.instance_id(), i.auto_scaling_group_name()) {
                out.insert(id.to_string(), g.to_string());
            }
        }
    }
    Ok(out)
}

/// The groups Auto Scaling describes, by name (a group not found is left out).
async fn describe_groups(
    aws: &AwsClients,
    names: &BTreeSet<String>,
) -> Result<BTreeMap<String, aws_sdk_autoscaling::types::AutoScalingGroup>, RollError> {
    let mut out = BTreeMap::new();
    let names: Vec<String> = names.iter().cloned().collect();
    for chunk in names.chunks(50) {
        let found = aws
            .autoscaling
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| crate::resources::aws_error("DescribeAutoScalingGroups", e))?;
        for g in found.auto_scaling_groups() {
            if let Some(name) = g.auto_scaling_group_name() {
                out.insert(name.to_string(), g.clone());
            }
        }
    }
    Ok(out)
}

pub async fn custom_networking_on(client: &kube::Client) -> Result<bool, RollError> {
    let ds: Api<k8s_openapi::api::apps::v1::DaemonSet> =
        Api::namespaced(client.clone(), "kube-system");
    let Some(ds) = ds
        .get_opt("aws-node")
        .await
        .map_err(kube_err("get daemonset aws-node"))?
    else {
        return Ok(false);
    };
    Ok(ds
        .spec
        .template
        .spec
        .into_iter()
        .flat_map(|s| s.containers)
        .filter(|c| c.name == "aws-node")
        .flat_map(|c| c.env.unwrap_or_default())
        .any(|e| {
            e.name == "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG" && e.value.as_deref() == Some("true")
        }))
}

/// What a roll works on: one cluster of the spec, and the state its progress goes to.
pub struct Target<'a> {
    pub spec: &'a Spec,
    pub aws: &'a AwsClients,
    pub client: kube::Client,
    pub store: &'a StateStore,
    pub cluster: &'a str,
}

/// The shared context of one roll.
pub struct Roll<'a> {
    pub spec: &'a Spec,
    pub aws: &'a AwsClients,
    pub client: kube::Client,
    pub store: &'a StateStore,
    pub cluster: String,
    pub opts: Options,
    pub aim: existing::Aim,
    /// Replacements already claimed by a node (so two nodes never take the same one).
    claimed: Mutex<BTreeSet<String>>,
    /// What each node in flight is waiting for, for the timeout's report.
    waiting: Mutex<BTreeMap<String, String>>,
    /// One lock per Auto Scaling group: two nodes in flight never raise a group's desired
    /// capacity from the same reading.
    group_locks: Mutex<BTreeMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// Progress lines (stderr).
    pub say: Box<dyn Fn(String) + Send + Sync + 'a>,
}

impl<'a> Roll<'a> {
    pub fn new(
        target: Target<'a>,
        opts: Options,
        aim: existing::Aim,
        records: &BTreeMap<String, Record>,
        say: Box<dyn Fn(String) + Send + Sync + 'a>,
    ) -> Roll<'a> {
        let Target {
            spec,
            aws,
            client,
            store,
            cluster,
        } = target;
        Roll {
            spec,
            aws,
            client,
            store,
            cluster: cluster.to_string(),
            opts,
            aim,
            claimed: Mutex::new(
                records
                    .values()
                    .filter_map(|r| r.replacement.clone())
                    .collect(),
            ),
            waiting: Mutex::new(BTreeMap::new()),
            group_locks: Mutex::new(BTreeMap::new()),
            say,
        }
    }

    fn wait_for(&self, node: &str, what: String) {
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(node.to_string(), what);
        }
    }

    fn waiting_for(&self, node: &str) -> String {
        self.waiting
            .lock()
            .ok()
            .and_then(|w| w.get(node).cloned())
            .unwrap_or_else(|| "its first step".into())
    }

    async fn save(&self, r: &Record) -> Result<(), RollError> {
        let value = serde_json::to_value(r).unwrap_or(Value::Null);
        self.store
            .put_record(&key(&self.cluster, &r.node), Some(value))
            .await?;
        Ok(())
    }

    /// Moves every node of the order, `max_unavailable` at a time; the nodes under way
    /// first. Returns the nodes moved (old → new).
    pub async fn run(&self, order: Order) -> Result<Vec<(String, String)>, RollError> {
        let mut work: Vec<Record> = order.resumed;
        work.extend(order.nodes.into_iter().map(|n| Record {
            node: n.name,
            instance_id: n.instance_id,
            owner: n.owner,
            zone: n.zone,
            phase: "new".into(),
            surge: None,
            terminated_at: None,
            replacement: None,
        }));
        let moved = Mutex::new(Vec::new());
        futures::stream::iter(work.into_iter().map(Ok::<_, RollError>))
            .try_for_each_concurrent(self.opts.max_unavailable.max(1), |r| {
                let moved = &moved;
                async move {
                    let node = r.node.clone();
                    let started = Instant::now();
                    let done = tokio::time::timeout(self.opts.node_timeout, self.move_node(r))
                        .await
                        .map_err(|_| {
                            RollError::Node(format!(
                                "node {node}: not moved after {}s, waiting for {}",
                                self.opts.node_timeout.as_secs(),
                                self.waiting_for(&node)
                            ))
                        })??;
                    (self.say)(format!(
                        "roll: {node} → {done} ({:.1}s)",
                        started.elapsed().as_secs_f64()
                    ));
                    if let Ok(mut m) = moved.lock() {
                        m.push((node, done));
                    }
                    Ok(())
                }
            })
            .await?;
        Ok(moved.into_inner().unwrap_or_default())
    }

    async fn move_node(&self, mut r: Record) -> Result<String, RollError> {
        if (r.phase == "new" && self.opts.surge) || r.phase == "surging" {
            self.surge(&mut r).await?;
        }
        if r.phase == "surged" {
            let since = r.surge.as_ref().map(|s| s.at.clone());
            let new = self.wait_replacement(&r, since.as_deref()).await?;
            (self.say)(format!("roll: {}: {new} is Ready, drain next", r.node));
            r.replacement = Some(new);
            r.phase = "draining".into();
            self.save(&r).await?;
        }
        if r.phase == "new" || r.phase == "draining" {
            r.phase = "draining".into();
            self.save(&r).await?;
            (self.say)(format!("roll: {} ({}): cordon and drain", r.node, r.owner));
            self.cordon(&r.node).await?;
            self.drain(&r.node).await?;
            r.phase = "terminated".into();
            r.terminated_at = Some(crate::state::now_rfc3339());
            // Written before the call: a crash after it finds the node waiting for its
            // replacement, not drained again.
            self.save(&r).await?;
        }
        if r.phase == "terminated" {
            // Again after a resume: the run that wrote the phase may have stopped before its
            // call; ending an instance that has ended already changes nothing.
            self.terminate(&r).await?;
            if r.replacement.is_none() && replaced_one_for_one(&r.owner) {
                let new = self
                    .wait_replacement(&r, r.terminated_at.as_deref())
                    .await?;
                r.replacement = Some(new);
            }
            r.phase = "done".into();
            self.save(&r).await?;
        }
        Ok(r.replacement.unwrap_or_else(|| NO_REPLACEMENT.to_string()))
    }

    fn group_lock(&self, group: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        match self.group_locks.lock() {
            Ok(mut locks) => locks.entry(group.to_string()).or_default().clone(),
            // A worker panicked holding the map: a lock of its own still serialises nothing
            // less than before the panic, and the roll stops on that panic anyway.
            Err(_) => std::sync::Arc::default(),
        }
    }

    /// Raises the node's Auto Scaling group by one for its replacement, when it has room;
    /// otherwise leaves the node to be drained first (`new`). On a resumed `surging`, raises
    /// it only if the earlier run's call did not land.
    async fn surge(&self, r: &mut Record) -> Result<(), RollError> {
        let group = match &r.surge {
            Some(s) => s.group.clone(),
            None => {
                let Some(id) = r.instance_id.clone() else {
                    return Ok(());
                };
                match groups_of(self.aws, &[id]).await?.into_values().next() {
                    Some(g) => g,
                    None => return Ok(()),
                }
            }
        };
        let lock = self.group_lock(&group);
        let _held = lock.lock().await;
        let found = describe_groups(self.aws, &BTreeSet::from([group.clone()])).await?;
        let Some(asg) = found.get(&group) else {
            // Gone (a resumed surge whose group was deleted meanwhile): drained first, as
            // any node whose group cannot be raised.
            r.surge = None;
            r.phase = "new".into();
            return Ok(());
        };
        let desired = asg.desired_capacity().unwrap_or(0);
        match &r.surge {
            // Resumed: the call landed if the group is at the target already (a surge of
            // another node only raises it further, under this lock).
            Some(s) if desired >= s.desired => {}
            Some(s) => self.set_desired(&group, s.desired).await?,
            None => {
                if !room(asg) {
                    (self.say)(format!(
                        "roll: {}: {group} has no room for one more node (desired {desired}, max {}): drained before its replacement",
                        r.node,
                        asg.max_size().unwrap_or(0)
                    ));
                    return Ok(());
                }
                r.surge = Some(Surge {
                    group: group.clone(),
                    desired: desired + 1,
                    at: crate::state::now_rfc3339(),
                });
                r.phase = "surging".into();
                // Written before the call: a rerun knows a raise may have happened.
                self.save(r).await?;
                (self.say)(format!(
                    "roll: {}: {group} desired capacity {desired} → {}, its replacement first",
                    r.node,
                    desired + 1
                ));
                self.set_desired(&group, desired + 1).await?;
            }
        }
        r.phase = "surged".into();
        self.save(r).await?;
        Ok(())
    }

    async fn set_desired(&self, group: &str, desired: i32) -> Result<(), RollError> {
        self.aws
            .autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(group)
            .desired_capacity(desired)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| crate::resources::aws_error("SetDesiredCapacity", e))?;
        Ok(())
    }

    async fn cordon(&self, node: &str) -> Result<(), RollError> {
        Ok(self.drainer().cordon(node).await?)
    }

    async fn drain(&self, node: &str) -> Result<(), RollError> {
        Ok(self.drainer().drain(node).await?)
    }

    /// The shared drain, its progress prefixed as the roll's and its waits named for the
    /// node's timeout report.
    fn drainer(&self) -> Drainer<'_> {
        Drainer {
            client: self.client.clone(),
            pause: self.opts.pause,
            say: Box::new(|m| (self.say)(format!("roll: {m}"))),
            waiting: Box::new(|node, what| self.wait_for(node, what)),
        }
    }

    async fn terminate(&self, r: &Record) -> Result<(), RollError> {
        let Some(id) = r.instance_id.as_deref() else {
            return Ok(());
        };
        // A resumed node whose instance already ends is not touched again.
        let state = self
            .aws
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map(|out| {
                out.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .find_map(|i| i.state()?.name().map(|n| n.as_str().to_string()))
            });
        match state {
            Ok(Some(s))
                if s != "pending" && s != "running" && s != "stopping" && s != "stopped" =>
            {
                return Ok(())
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                let err = crate::resources::aws_error("DescribeInstances", e);
                if err.code() == Some("InvalidInstanceID.NotFound") {
                    return Ok(());
                }
                return Err(err.into());
            }
            Ok(Some(_)) => {}
        }
        (self.say)(format!("roll: {}: terminate {id}", r.node));
        // In an Auto Scaling group (self-managed, or the one behind a managed nodegroup): the
        // group's own call, which launches a replacement at once, or after a surge lowers the
        // desired capacity again (the replacement is there already). Otherwise (or a group
        // Auto Scaling does not show) EC2's call, and the group's health check replaces it.
        if r.surge.is_some() || matches!(r.owner, Owner::AutoScaling(_) | Owner::Nodegroup(_)) {
            let known = self
                .aws
                .autoscaling
                .describe_auto_scaling_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(|e| crate::resources::aws_error("DescribeAutoScalingInstances", e))?;
            if !known.auto_scaling_instances().is_empty() {
                self.aws
                    .autoscaling
                    .terminate_instance_in_auto_scaling_group()
                    .instance_id(id)
                    .should_decrement_desired_capacity(r.surge.is_some())
                    .send()
                    .await
                    .map_err(|e| {
                        crate::resources::aws_error("TerminateInstanceInAutoScalingGroup", e)
                    })?;
                return Ok(());
            }
        }
        match self
            .aws
            .ec2
            .terminate_instances()
            .instance_ids(id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = crate::resources::aws_error("TerminateInstances", e);
                if err.code() == Some("InvalidInstanceID.NotFound") {
                    return Ok(());
                }
                Err(err.into())
            }
        }
    }

    /// A node of the same owner, created after `since` (the termination, or the surge), Ready
    /// and on custom networking, that no other node has taken.
    async fn wait_replacement(&self, r: &Record, since: Option<&str>) -> Result<String, RollError> {
        let since = since
            .and_then(epoch_secs)
            .unwrap_or(0)
            // The API server's clock may be a little behind this machine's.
            .saturating_sub(60);
        self.wait_for(
            &r.node,
            match self.aim {
                existing::Aim::Onto => {
                    format!("a new Ready node of {} on custom networking", r.owner)
                }
                existing::Aim::Off(_) => {
                    format!("a new Ready node of {} off the pod subnets", r.owner)
                }
            },
        );
        loop {
            // Only the nodes created since: the rest cannot be the replacement, and reading
            // every node's instance and ENIs on each look would load AWS for nothing.
            let survey = existing::survey_of(
                self.spec,
                self.aws,
                self.client.clone(),
                &self.cluster,
                &self.aim,
                |n: &Node| {
                    n.metadata.name.as_deref() != Some(r.node.as_str())
                        && n.metadata
                            .creation_timestamp
                            .as_ref()
                            .is_some_and(|c| c.0.as_second() >= since)
                },
            )
            .await?;
            let found = survey.nodes.iter().find(|n| {
                n.owner == r.owner
                    && n.ready
                    && !n.needs_move()
                    && self.claimed.lock().is_ok_and(|c| !c.contains(&n.name))
            });
            if let Some(n) = found {
                let mut claimed = self
                    .claimed
                    .lock()
                    .map_err(|_| RollError::Node("roll: a worker panicked".into()))?;
                if claimed.insert(n.name.clone()) {
                    return Ok(n.name.clone());
                }
            }
            tokio::time::sleep(self.opts.pause).await;
        }
    }
}

/// Seconds since the epoch of a time as `state::now_rfc3339` writes it (`unix:SECS`).
fn epoch_secs(t: &str) -> Option<i64> {
    t.strip_prefix("unix:")?.parse().ok()
}

/// `--dry-run`: the order, one line per node.
pub fn render_order(cluster: &str, o: &Order, max_unavailable: usize) -> String {
    let mut out = format!(
        "cluster {cluster}: {} node(s) to move, {max_unavailable} at a time",
        o.resumed.len() + o.nodes.len()
    );
    if o.done > 0 {
        out.push_str(&format!(" ({} moved by an earlier run)", o.done));
    }
    out.push('\n');
    let mut i = 0;
    for r in &o.resumed {
        i += 1;
        out.push_str(&format!(
            "  {i}. {} ({}, {}) — resumed: {}\n",
            r.node,
            r.instance_id.as_deref().unwrap_or("no instance"),
            r.owner,
            r.phase
        ));
    }
    for n in &o.nodes {
        i += 1;
        out.push_str(&format!(
            "  {i}. {} ({}, {}{}): {}\n",
            n.name,
            n.instance_id.as_deref().unwrap_or("no instance"),
            n.owner,
            n.zone
                .as_deref()
                .map(|z| format!(", {z}"))
                .unwrap_or_default(),
            n.reasons.join("; ")
        ));
    }
    for n in &o.in_spec {
        out.push_str(&format!(
            "  - {} ({}): in this spec; `eksnet apply --replace {}` replaces it create-before-destroy\n",
            n.name,
            n.owner,
            n.in_spec.as_deref().unwrap_or("?")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_groups_are_waited_for_a_replacement() {
        assert!(replaced_one_for_one(&Owner::Nodegroup("ng".into())));
        assert!(replaced_one_for_one(&Owner::AutoScaling("g".into())));
        assert!(!replaced_one_for_one(&Owner::Karpenter("default".into())));
    }

    #[test]
    fn the_order_resumes_first_and_skips_what_is_done_or_in_the_spec() {
        let node = |name: &str, owner: Owner, in_spec: Option<&str>| ExistingNode {
            name: name.into(),
            instance_id: Some(format!("i-{name}")),
            zone: Some("us-west-2a".into()),
            owner,
            ready: true,
            unschedulable: false,
            reasons: vec!["1 pod(s) with addresses outside the pod subnets".into()],
            in_spec: in_spec.map(String::from),
        };
        let survey = Survey {
            cluster: "c".into(),
            nodes: vec![
                node("a", Owner::AutoScaling("g".into()), None),
                node("b", Owner::AutoScaling("g".into()), None),
                node("c", Owner::Nodegroup("ng".into()), Some("nodegroup.main")),
                node("d", Owner::Nodegroup("other".into()), None),
            ],
        };
        let rec = |node: &str, phase: &str| Record {
            node: node.into(),
            instance_id: None,
            owner: Owner::AutoScaling("g".into()),
            zone: None,
            phase: phase.into(),
            surge: None,
            terminated_at: None,
            replacement: None,
        };
        let records: BTreeMap<String, Record> = [
            ("a".to_string(), rec("a", "terminated")),
            ("x".to_string(), rec("x", "done")),
        ]
        .into_iter()
        .collect();
        let o = order(&survey, &records);
        assert_eq!(
            o.resumed
                .iter()
                .map(|r| r.node.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            o.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["b", "d"]
        );
        assert_eq!(o.in_spec.len(), 1);
        assert_eq!(o.done, 1);
    }
}
