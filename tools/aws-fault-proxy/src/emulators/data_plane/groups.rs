//! EC2 Auto Scaling groups that keep their capacity as AWS's do: the groups of self-managed
//! nodes (EKS user guide, `nodes/worker.adoc`: an Auto Scaling group over a launch template,
//! its instances tagged `kubernetes.io/cluster/<name>=owned` by the group's tags with
//! `PropagateAtLaunch`). Only the groups moto has (DescribeAutoScalingGroups) are looked
//! at: a managed nodegroup's instances carry the `aws:autoscaling:groupName` of a group
//! moto does not have, and `fleet.rs` keeps those.
//!
//! What AWS does (EC2 Auto Scaling user guide):
//!
//! - **Health check replacement** ("Health checks for instances in an Auto Scaling group",
//!   "Replace unhealthy instances"): an `InService` instance that is not `running` (stopped,
//!   terminated by a user, gone) is marked `Unhealthy` and replaced "to maintain the
//!   desired capacity of the group", the new instance launched "using the current settings
//!   of the Auto Scaling group and its associated launch template". An instance a client
//!   marked `Unhealthy` (SetInstanceHealth) is replaced too.
//! - **Launches spread over the zones** ("Rebalancing activities" / "Instance distribution"
//!   of "Balance across Availability Zones"): a new instance goes to the Availability Zone
//!   of the group's subnets with the fewest instances; a group that became unbalanced is
//!   rebalanced (`AZRebalance`), new instances launched before old ones are terminated.
//! - **Tags** ("Tag Auto Scaling groups and instances"): the group's tags with
//!   `PropagateAtLaunch`, and `aws:autoscaling:groupName`.
//! - **Suspended processes** ("How suspended processes affect other processes"): without
//!   `HealthCheck` nothing is marked unhealthy; without `ReplaceUnhealthy`, `Terminate` or
//!   `Launch` an unhealthy instance is not replaced (without `Launch` AWS still terminates
//!   it and replaces it once `Launch` resumes); without `AZRebalance`, `Launch` or
//!   `Terminate` nothing is rebalanced.
//! - TerminateInstanceInAutoScalingGroup without `ShouldDecrementDesiredCapacity` leaves the
//!   group short of its desired capacity: it launches a replacement unless `Launch` is
//!   suspended (API reference, TerminateInstanceInAutoScalingGroup).
//!
//! What moto 5.2.5 does instead, and how the data plane makes up for it:
//!
//! - It launches all of a group's instances into the first subnet of `VPCZoneIdentifier`.
//!   Each pass rebalances: an instance in the fullest zone is swapped for one launched into
//!   the emptiest, before the instances join as Nodes (the Nodes step follows).
//! - It replaces an instance at once inside EC2's TerminateInstances and inside
//!   TerminateInstanceInAutoScalingGroup, into that first subnet, whatever is suspended.
//!   With the data plane on, the proxy serves those two calls for the group's `InService`
//!   instances ([`DataPlane::serve_terminate`]): it launches the replacement itself into the
//!   right zone, puts the instance in Standby with the desired capacity lowered (so that
//!   moto launches nothing), lets moto carry out the call, then attaches the replacement
//!   (desired capacity back). When replacement is suspended there is no replacement, and
//!   the group's desired capacity stays one lower per instance: moto cannot hold a group
//!   below its desired capacity, nor list a terminated instance as AWS does (`Unhealthy`).
//! - It does nothing for a stopped instance, or one a client marked `Unhealthy`. Each pass
//!   does the health check: the instance is marked `Unhealthy` in moto, then swapped for a
//!   new one (launched first, then the old one leaves the group and is terminated, then the
//!   new one is attached). With `Launch` suspended it stays listed, `Unhealthy`, until
//!   `Launch` resumes: that keeps the desired capacity (AWS terminates it meanwhile).
//!
//! Idempotent and crash-tolerant: a replacement is launched tagged with the group's name
//! before anything else changes, so an instance launched for a group and not in it yet is
//! found again by its tags and finishes the swap (or joins the group) in a later pass; one
//! the data plane launched but DescribeInstances does not show yet counts for
//! [`LAUNCH_GRACE`](super::LAUNCH_GRACE) and is not launched again. Groups of a launch
//! configuration (no launch template) are left to moto.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use hyper::Method;

use crate::core::emulator::{Call, Pass};
use crate::core::faults::Reply;
use crate::core::ops::{form_decode, Protocol};
use crate::core::scopes::Scope;
use crate::core::upstream::is_success;
use crate::shared::lock;

use super::autoscaling::{Autoscaling, Group};
use super::ec2::{self, Ec2, Instance, Launch, TemplateVersion};
use super::{
    alive, DataPlane, Observed, DEFAULT_INSTANCE_TYPE, EKS_AMI, LAUNCH_GRACE, TAG_GROUP,
    TAG_NODEGROUP,
};

/// Lifecycle states of an instance that counts in its group's capacity.
fn counted(lifecycle: &str) -> bool {
    lifecycle == "InService" || lifecycle.starts_with("Pending")
}

/// One instance of the group, with what EC2 says of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Member {
    pub id: String,
    pub zone: String,
    pub lifecycle: String,
    pub health: String,
    /// EC2's state; `None` if DescribeInstances does not show it.
    pub state: Option<String>,
    pub launch_time: String,
    /// Launched by the data plane less than `LAUNCH_GRACE` ago: it may not show yet.
    pub fresh: bool,
}

impl Member {
    /// Not `running` (nor about to be) as EC2 sees it.
    fn failing_ec2_check(&self) -> bool {
        match &self.state {
            Some(s) => !matches!(s.as_str(), "pending" | "running"),
            None => !self.fresh,
        }
    }
}

/// An instance launched for the group that is not in it yet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pending {
    pub id: String,
    pub zone: String,
    /// Whether DescribeInstances shows it (only then can it be attached).
    pub visible: bool,
}

/// A group as one pass sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupState {
    /// (subnet, zone) of the subnets that exist, in the group's order.
    pub subnets: Vec<(String, String)>,
    pub members: Vec<Member>,
    pub pending: Vec<Pending>,
    pub suspended: BTreeSet<String>,
}

impl GroupState {
    fn suspended(&self, processes: &[&str]) -> bool {
        processes.iter().any(|p| self.suspended.contains(*p))
    }

    /// Instances per zone of the group's subnets: members that count and are healthy, and
    /// launches on their way in. Zones in the subnets' order.
    fn zone_counts(&self, leaving: &BTreeSet<&str>) -> Vec<(String, usize)> {
        let mut zones: Vec<(String, usize)> = Vec::new();
        for (_, zone) in &self.subnets {
            if !zones.iter().any(|(z, _)| z == zone) {
                zones.push((zone.clone(), 0));
            }
        }
        let zones_of_members = self
            .members
            .iter()
            .filter(|m| counted(&m.lifecycle) && !leaving.contains(m.id.as_str()))
            .map(|m| &m.zone);
        for zone in zones_of_members.chain(self.pending.iter().map(|p| &p.zone)) {
            if let Some((_, n)) = zones.iter_mut().find(|(z, _)| z == zone) {
                *n += 1;
            }
        }
        zones
    }

    /// The subnet for one more instance: the first of the zone with the fewest (ties in
    /// the group's order), counted in `counts`.
    fn next_subnet(&self, counts: &mut [(String, usize)]) -> Option<String> {
        let (zone, n) = counts.iter_mut().min_by_key(|(_, n)| *n)?;
        *n += 1;
        let zone = zone.clone();
        self.subnets
            .iter()
            .find(|(_, z)| *z == zone)
            .map(|(s, _)| s.clone())
    }
}

/// What takes an old instance's place.
#[derive(Clone, Debug, PartialEq)]
pub enum New {
    /// An instance already launched for the group.
    Pending(String),
    /// One to launch into this subnet.
    Launch(String),
}

/// An instance to take out of the group, and what takes its place.
#[derive(Clone, Debug, PartialEq)]
pub struct Swap {
    pub old: String,
    pub new: New,
}

/// What to do for one group in this pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Members the health check marks `Unhealthy` (SetInstanceHealth).
    pub mark_unhealthy: Vec<String>,
    /// Unhealthy members and their replacements.
    pub replace: Vec<Swap>,
    /// Instances launched for the group to attach with no member leaving (a swap cut
    /// short before its end).
    pub attach: Vec<String>,
    /// `AZRebalance`: members of the fullest zone and their replacements in the emptiest.
    pub rebalance: Vec<Swap>,
}

pub fn plan(g: &GroupState) -> Plan {
    let mut plan = Plan::default();
    let checking = !g.suspended(&["HealthCheck"]);
    let mut unhealthy: Vec<&Member> = g
        .members
        .iter()
        .filter(|m| counted(&m.lifecycle))
        .filter(|m| m.health == "Unhealthy" || (checking && m.failing_ec2_check()))
        .collect();
    unhealthy.sort_by(|a, b| a.id.cmp(&b.id));
    plan.mark_unhealthy = unhealthy
        .iter()
        .filter(|m| m.health != "Unhealthy")
        .map(|m| m.id.clone())
        .collect();
    let leaving: BTreeSet<&str> = unhealthy.iter().map(|m| m.id.as_str()).collect();
    let mut counts = g.zone_counts(&leaving);
    // Launches on their way in take the places first: visible ones can be attached now, the
    // others are waited for.
    let mut pool: VecDeque<&Pending> = {
        let mut p: Vec<&Pending> = g.pending.iter().collect();
        p.sort_by(|a, b| (!a.visible, &a.id).cmp(&(!b.visible, &b.id)));
        p.into()
    };
    if !g.suspended(&["ReplaceUnhealthy", "Terminate", "Launch"]) {
        for m in &unhealthy {
            match pool.pop_front() {
                Some(p) if p.visible => plan.replace.push(Swap {
                    old: m.id.clone(),
                    new: New::Pending(p.id.clone()),
                }),
                Some(_) => {}
                None => {
                    if let Some(subnet) = g.next_subnet(&mut counts) {
                        plan.replace.push(Swap {
                            old: m.id.clone(),
                            new: New::Launch(subnet),
                        });
                    }
                }
            }
        }
    }
    plan.attach = pool
        .iter()
        .filter(|p| p.visible)
        .map(|p| p.id.clone())
        .collect();
    if plan.replace.is_empty() && !g.suspended(&["AZRebalance", "Launch", "Terminate"]) {
        plan.rebalance = rebalance(g, &leaving, &mut counts);
    }
    plan
}

/// Swaps until no zone has more than one instance over another: each takes the newest
/// healthy member of the fullest zone for a launch into the emptiest.
fn rebalance(
    g: &GroupState,
    leaving: &BTreeSet<&str>,
    counts: &mut [(String, usize)],
) -> Vec<Swap> {
    let mut out = Vec::new();
    let mut gone: BTreeSet<&str> = leaving.clone();
    for _ in 0..g.members.len() {
        let Some(max) = counts.iter().map(|(_, n)| *n).max() else {
            break;
        };
        let Some(min) = counts.iter().map(|(_, n)| *n).min() else {
            break;
        };
        if max <= min + 1 {
            break;
        }
        let Some(full) = counts.iter().position(|(_, n)| *n == max) else {
            break;
        };
        let zone = counts[full].0.clone();
        let victim = g
            .members
            .iter()
            .filter(|m| counted(&m.lifecycle) && m.zone == zone && !gone.contains(m.id.as_str()))
            .max_by(|a, b| (&a.launch_time, &a.id).cmp(&(&b.launch_time, &b.id)));
        let Some(victim) = victim else {
            break;
        };
        counts[full].1 -= 1;
        let Some(subnet) = g.next_subnet(counts) else {
            break;
        };
        gone.insert(victim.id.as_str());
        out.push(Swap {
            old: victim.id.clone(),
            new: New::Launch(subnet),
        });
    }
    out
}

/// How a client's call ends an instance of a group.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    /// EC2's TerminateInstances: the health check then replaces it.
    Ec2,
    /// TerminateInstanceInAutoScalingGroup without ShouldDecrementDesiredCapacity: the
    /// group launches to get back to its desired capacity.
    InGroup,
}

impl Ending {
    fn replaced(self, g: &GroupState) -> bool {
        match self {
            Ending::Ec2 => {
                !g.suspended(&["HealthCheck", "ReplaceUnhealthy", "Terminate", "Launch"])
            }
            Ending::InGroup => !g.suspended(&["Launch"]),
        }
    }
}

impl DataPlane {
    /// Each group's state from fresh describes, under the groups lock (`asg`): what a
    /// concurrent request's swap left is seen whole.
    async fn group_states(
        &self,
        ec2: &Ec2<'_>,
        groups: &[Group],
    ) -> Result<Vec<GroupState>, String> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let filter = format!("tag:{TAG_GROUP}");
        let mut instances = ec2.instances_where(&[(filter.as_str(), names)]).await?;
        // A member whose tag was taken off is asked for by id before it counts as gone.
        let untagged: Vec<String> = groups
            .iter()
            .flat_map(|g| g.instances.iter())
            .filter(|m| !instances.iter().any(|i| i.id == m.id))
            .map(|m| m.id.clone())
            .collect();
        if !untagged.is_empty() {
            let found = ec2.instances_where(&[("instance-id", untagged)]).await?;
            instances.extend(found);
        }
        let by_id: BTreeMap<&str, &Instance> =
            instances.iter().map(|i| (i.id.as_str(), i)).collect();
        let subnet_ids: BTreeSet<String> = groups
            .iter()
            .flat_map(|g| g.subnets.iter().cloned())
            .collect();
        let subnet_ids: Vec<String> = subnet_ids.into_iter().collect();
        let mut zones = BTreeMap::new();
        if !subnet_ids.is_empty() {
            zones = ec2.subnet_zones(&subnet_ids).await.unwrap_or_default();
        }
        if zones.len() < subnet_ids.len() {
            // One was deleted (EC2 then refuses the whole call): one by one.
            zones.clear();
            for id in &subnet_ids {
                if let Some(s) = ec2.subnet(id).await? {
                    zones.insert(s.id, s.zone);
                }
            }
        }
        let region = ec2.scope.region.clone();
        let launched = lock(&self.memory).asg_launches.clone();
        let mut out = Vec::new();
        for g in groups {
            let fresh: BTreeMap<String, (String, Instant)> = launched
                .get(&(region.clone(), g.name.clone()))
                .into_iter()
                .flatten()
                .filter(|(_, (_, since))| since.elapsed() < LAUNCH_GRACE)
                .map(|(id, v)| (id.clone(), v.clone()))
                .collect();
            let in_group: BTreeSet<&str> = g.instances.iter().map(|i| i.id.as_str()).collect();
            let members = g
                .instances
                .iter()
                .map(|m| {
                    let i = by_id.get(m.id.as_str());
                    Member {
                        id: m.id.clone(),
                        zone: m.zone.clone(),
                        lifecycle: m.lifecycle.clone(),
                        health: m.health.clone(),
                        state: i.map(|i| i.state.clone()),
                        launch_time: i.map(|i| i.launch_time.clone()).unwrap_or_default(),
                        fresh: fresh.contains_key(&m.id),
                    }
                })
                .collect();
            let mut pending: Vec<Pending> = instances
                .iter()
                .filter(|i| {
                    i.tag(TAG_GROUP) == Some(g.name.as_str())
                        && i.tag(TAG_NODEGROUP).is_none()
                        && alive(i)
                        && !in_group.contains(i.id.as_str())
                })
                .map(|i| Pending {
                    id: i.id.clone(),
                    zone: i.availability_zone.clone(),
                    visible: true,
                })
                .collect();
            pending.extend(
                fresh
                    .iter()
                    .filter(|(id, _)| {
                        !by_id.contains_key(id.as_str()) && !in_group.contains(id.as_str())
                    })
                    .map(|(id, (zone, _))| Pending {
                        id: id.clone(),
                        zone: zone.clone(),
                        visible: false,
                    }),
            );
            out.push(GroupState {
                subnets: g
                    .subnets
                    .iter()
                    .filter_map(|s| Some((s.clone(), zones.get(s)?.clone())))
                    .collect(),
                members,
                pending,
                suspended: g.suspended.clone(),
            });
        }
        Ok(out)
    }

    /// Launches one instance for a group into `subnet`, from its launch template, tagged
    /// at launch with the group's propagated tags and its name (so that it is never seen
    /// untagged), and remembers it for `LAUNCH_GRACE`.
    async fn launch_for(
        &self,
        ec2: &Ec2<'_>,
        g: &Group,
        template: &TemplateVersion,
        subnet: &str,
    ) -> Result<Instance, String> {
        let mut tags = g.propagated_tags.clone();
        tags.insert(TAG_GROUP.to_string(), g.name.clone());
        let launch = Launch {
            subnet_id: subnet.to_string(),
            instance_type: template
                .instance_type
                .clone()
                .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_string()),
            image_id: template.image_id.is_none().then(|| EKS_AMI.to_string()),
            template: Some((template.template_id.clone(), template.number.clone())),
            security_group_ids: Vec::new(),
            tags,
            user_data: None,
        };
        let instance = ec2.run(&launch).await?;
        lock(&self.memory)
            .asg_launches
            .entry((ec2.scope.region.clone(), g.name.clone()))
            .or_default()
            .insert(
                instance.id.clone(),
                (instance.availability_zone.clone(), Instant::now()),
            );
        Ok(instance)
    }

    /// The launch template version a group launches from now.
    async fn group_template(ec2: &Ec2<'_>, g: &Group) -> Result<TemplateVersion, String> {
        let t = g
            .template
            .as_ref()
            .ok_or_else(|| format!("group {} has no launch template", g.name))?;
        let version = t.version.clone().unwrap_or_else(|| "$Default".into());
        ec2.template_version(t.id.as_deref(), t.name.as_deref(), &version)
            .await
    }

    /// The pass's step for Auto Scaling groups (see the module comment), before the
    /// instances join as Nodes.
    pub(super) async fn reconcile_groups(&self, pass: &Pass<'_>, obs: &mut Observed<'_>) {
        let _groups = self.asg.lock().await;
        if !pass.current() {
            return;
        }
        let scope = obs.scope;
        let region = scope.region.clone();
        let subject = format!("{region}/autoscaling");
        let asg = Autoscaling {
            host: pass.host,
            scope,
        };
        let ec2 = Ec2 {
            host: pass.host,
            scope,
        };
        let groups: Vec<Group> = match asg.groups(&[]).await {
            Ok(g) => g.into_iter().filter(|g| g.template.is_some()).collect(),
            Err(e) => return self.problem(&subject, e),
        };
        let live: BTreeSet<String> = groups.iter().map(|g| g.name.clone()).collect();
        self.remember(pass, |m| {
            m.asg_launches.retain(|(r, name), launches| {
                launches.retain(|_, (_, since)| since.elapsed() < LAUNCH_GRACE);
                *r != region || (live.contains(name) && !launches.is_empty())
            })
        });
        let states = match self.group_states(&ec2, &groups).await {
            Ok(s) => s,
            Err(e) => return self.problem(&subject, e),
        };
        self.solved(&subject);
        for (g, state) in groups.iter().zip(&states) {
            if !pass.current() {
                return;
            }
            let subject = format!("{region}/autoscaling/{}", g.name);
            match self.carry_out(pass, &asg, &ec2, g, state, obs).await {
                Ok(()) => self.solved(&subject),
                Err(e) => self.problem(&subject, e),
            }
        }
    }

    async fn carry_out(
        &self,
        pass: &Pass<'_>,
        asg: &Autoscaling<'_>,
        ec2: &Ec2<'_>,
        g: &Group,
        state: &GroupState,
        obs: &mut Observed<'_>,
    ) -> Result<(), String> {
        let plan = plan(state);
        for id in &plan.mark_unhealthy {
            asg.mark_unhealthy(id).await?;
        }
        asg.attach(&g.name, &plan.attach).await?;
        let swaps: Vec<&Swap> = plan.replace.iter().chain(&plan.rebalance).collect();
        if swaps.is_empty() {
            return Ok(());
        }
        let needs_launch = swaps.iter().any(|s| matches!(s.new, New::Launch(_)));
        let template = if needs_launch {
            Some(Self::group_template(ec2, g).await?)
        } else {
            None
        };
        for swap in swaps {
            if !pass.current() {
                return Ok(());
            }
            // The new one first: launched and tagged with the group, it finishes the swap
            // in a later pass if this one stops half-way.
            let new = match (&swap.new, &template) {
                (New::Pending(id), _) => id.clone(),
                (New::Launch(subnet), Some(t)) => {
                    let i = self.launch_for(ec2, g, t, subnet).await?;
                    let id = i.id.clone();
                    obs.instances.push(i);
                    id
                }
                (New::Launch(_), None) => continue,
            };
            let old = state.members.iter().find(|m| m.id == swap.old);
            let running =
                old.is_some_and(|m| m.state.as_deref().is_some_and(|s| !ec2::is_ending(s)));
            if running {
                // Out of the group's count first, so that moto's TerminateInstances
                // launches nothing in its place.
                if old.is_some_and(|m| counted(&m.lifecycle)) {
                    asg.standby(&g.name, std::slice::from_ref(&swap.old))
                        .await?;
                }
                ec2.terminate(std::slice::from_ref(&swap.old)).await?;
                for i in obs.instances.iter_mut().filter(|i| i.id == swap.old) {
                    i.state = "terminated".to_string();
                }
            } else {
                asg.detach(&g.name, std::slice::from_ref(&swap.old)).await?;
            }
            asg.attach(&g.name, std::slice::from_ref(&new)).await?;
        }
        Ok(())
    }

    /// Puts back what [`serve_terminate`](Self::serve_terminate) prepared when the call
    /// is not carried out: the instances back in their groups' count, the replacements
    /// terminated.
    async fn undo(
        &self,
        asg: &Autoscaling<'_>,
        ec2: &Ec2<'_>,
        subject: &str,
        benched: Vec<(String, Vec<String>)>,
        launched: Vec<(String, Vec<String>)>,
    ) {
        for (g, olds) in &benched {
            if let Err(e) = asg.exit_standby(g, olds).await {
                self.problem(subject, e);
            }
        }
        let news: Vec<String> = launched.into_iter().flat_map(|(_, n)| n).collect();
        if let Err(e) = ec2.terminate(&news).await {
            self.problem(subject, e);
        }
    }

    /// Serves a client's EC2 TerminateInstances, or TerminateInstanceInAutoScalingGroup
    /// without ShouldDecrementDesiredCapacity, that ends `InService` instances of groups
    /// (see the module comment); `None` leaves the call to moto as it is.
    pub(super) async fn serve_terminate(&self, call: &Call<'_>) -> Option<Reply> {
        let info = call.info;
        if !call.cfg.data_plane {
            return None;
        }
        let ending = match (info.protocol, info.op.as_str()) {
            (Protocol::Ec2Query, "TerminateInstances") => Ending::Ec2,
            (Protocol::AwsQuery, "TerminateInstanceInAutoScalingGroup") => {
                let decrement = info.param("ShouldDecrementDesiredCapacity");
                if decrement.is_some_and(|d| d.eq_ignore_ascii_case("true")) {
                    return None;
                }
                Ending::InGroup
            }
            _ => return None,
        };
        // Carried out by forwarding the client's body again: only a form body will do.
        let body = String::from_utf8_lossy(call.body);
        if !form_decode(&body).iter().any(|(k, _)| k == "Action") {
            return None;
        }
        let ids: Vec<String> = match ending {
            Ending::Ec2 => {
                let mut ids: Vec<String> = info
                    .params
                    .iter()
                    .filter(|(k, _)| {
                        k.strip_prefix("InstanceId.")
                            .is_some_and(|n| n.parse::<u32>().is_ok())
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                ids.sort();
                ids.dedup();
                ids
            }
            Ending::InGroup => info
                .param("InstanceId")
                .map(str::to_string)
                .into_iter()
                .collect(),
        };
        if ids.is_empty() {
            return None;
        }
        let scope = Scope::of_request(call.headers)?;
        let _groups = self.asg.lock().await;
        let asg = Autoscaling {
            host: call.host,
            scope: &scope,
        };
        let ec2 = Ec2 {
            host: call.host,
            scope: &scope,
        };
        let mut ending_in: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, group, lifecycle) in asg.owners(&ids).await.ok()? {
            if counted(&lifecycle) {
                ending_in.entry(group).or_default().push(id);
            }
        }
        if ending_in.is_empty() {
            return None;
        }
        if ending == Ending::Ec2 {
            // moto refuses the whole call if it names an instance it does not know: then
            // there is nothing to prepare.
            let found = ec2
                .instances_where(&[("instance-id", ids.clone())])
                .await
                .ok()?;
            if found.len() < ids.len() {
                return None;
            }
        }
        let names: Vec<String> = ending_in.keys().cloned().collect();
        let groups: Vec<Group> = asg.groups(&names).await.ok()?;
        let states = self.group_states(&ec2, &groups).await.ok()?;
        let subject = format!("{}/autoscaling", scope.region);
        // Replacements first (tagged with their group: a crash now leaves them to the
        // passes), then the instances out of their groups' count.
        let mut launched: Vec<(String, Vec<String>)> = Vec::new();
        let mut benched: Vec<(String, Vec<String>)> = Vec::new();
        let mut failed = None;
        for (g, state) in groups.iter().zip(&states) {
            // A group of a launch configuration, or without subnets, is left to moto.
            let Some(olds) = ending_in.get(&g.name) else {
                continue;
            };
            if g.template.is_none() || state.subnets.is_empty() {
                continue;
            }
            let mut news = Vec::new();
            if ending.replaced(state) {
                let leaving: BTreeSet<&str> = olds.iter().map(String::as_str).collect();
                let mut counts = state.zone_counts(&leaving);
                let template = match Self::group_template(&ec2, g).await {
                    Ok(t) => t,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                for _ in olds {
                    let Some(subnet) = state.next_subnet(&mut counts) else {
                        break;
                    };
                    match self.launch_for(&ec2, g, &template, &subnet).await {
                        Ok(i) => news.push(i.id),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            launched.push((g.name.clone(), news));
            if failed.is_some() {
                break;
            }
            if let Err(e) = asg.standby(&g.name, olds).await {
                failed = Some(e);
                break;
            }
            benched.push((g.name.clone(), olds.clone()));
        }
        if let Some(e) = failed {
            // Left to moto, as without the data plane.
            self.problem(&subject, e);
            self.undo(&asg, &ec2, &subject, benched, launched).await;
            return None;
        }
        if benched.is_empty() {
            return None;
        }
        let reply = match call
            .host
            .upstream
            .forward(
                &Method::POST,
                "/",
                call.headers,
                Bytes::copy_from_slice(call.body),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.problem(&subject, e);
                self.undo(&asg, &ec2, &subject, benched, launched).await;
                return None;
            }
        };
        if !is_success(reply.status) {
            self.undo(&asg, &ec2, &subject, benched, launched).await;
            return Some(reply);
        }
        for (g, news) in &launched {
            // If this fails the passes attach them.
            if let Err(e) = asg.attach(g, news).await {
                self.problem(&subject, e);
            }
        }
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, zone: &str, state: &str) -> Member {
        Member {
            id: id.into(),
            zone: zone.into(),
            lifecycle: "InService".into(),
            health: "Healthy".into(),
            state: Some(state.into()),
            launch_time: format!("2026-01-01T00:00:0{}Z", id.trim_start_matches('i')),
            fresh: false,
        }
    }

    fn group(members: Vec<Member>) -> GroupState {
        GroupState {
            subnets: vec![("sa".into(), "za".into()), ("sb".into(), "zb".into())],
            members,
            pending: Vec::new(),
            suspended: BTreeSet::new(),
        }
    }

    fn launch(old: &str, subnet: &str) -> Swap {
        Swap {
            old: old.into(),
            new: New::Launch(subnet.into()),
        }
    }

    #[test]
    fn a_balanced_healthy_group_is_left_alone() {
        let g = group(vec![
            member("i1", "za", "running"),
            member("i2", "zb", "pending"),
        ]);
        assert_eq!(plan(&g), Plan::default());
    }

    #[test]
    fn an_instance_not_running_is_marked_and_replaced_in_the_emptiest_zone() {
        let g = group(vec![
            member("i1", "za", "running"),
            member("i2", "zb", "stopped"),
            member("i3", "za", "running"),
        ]);
        let p = plan(&g);
        assert_eq!(p.mark_unhealthy, ["i2"]);
        assert_eq!(p.replace, [launch("i2", "sb")]);
        assert!(p.rebalance.is_empty() && p.attach.is_empty());
        // Gone from EC2: unhealthy too, unless the data plane launched it a moment ago.
        let mut g = group(vec![
            member("i1", "za", "running"),
            member("i2", "zb", "running"),
        ]);
        g.members[1].state = None;
        assert_eq!(plan(&g).replace, [launch("i2", "sb")]);
        g.members[1].fresh = true;
        assert_eq!(plan(&g), Plan::default());
        // Marked by a client: replaced, not marked again.
        let mut g = group(vec![member("i1", "za", "running")]);
        g.members[0].health = "Unhealthy".into();
        let p = plan(&g);
        assert!(p.mark_unhealthy.is_empty());
        assert_eq!(p.replace, [launch("i1", "sa")]);
        // Standby instances are not checked.
        let mut g = group(vec![member("i1", "za", "stopped")]);
        g.members[0].lifecycle = "Standby".into();
        assert_eq!(plan(&g), Plan::default());
    }

    #[test]
    fn a_launch_on_its_way_takes_the_place_and_is_never_made_twice() {
        let mut g = group(vec![
            member("i1", "za", "running"),
            member("i2", "zb", "terminated"),
        ]);
        g.pending = vec![Pending {
            id: "i9".into(),
            zone: "zb".into(),
            visible: true,
        }];
        let p = plan(&g);
        assert_eq!(
            p.replace,
            [Swap {
                old: "i2".into(),
                new: New::Pending("i9".into())
            }]
        );
        // Not shown yet: waited for, nothing launched.
        g.pending[0].visible = false;
        let p = plan(&g);
        assert!(p.replace.is_empty() && p.attach.is_empty() && p.rebalance.is_empty());
        // Nothing to replace: a launched instance joins the group.
        let mut g = group(vec![member("i1", "za", "running")]);
        g.pending = vec![Pending {
            id: "i9".into(),
            zone: "zb".into(),
            visible: true,
        }];
        assert_eq!(plan(&g).attach, ["i9"]);
    }

    #[test]
    fn suspended_processes_hold_back_what_they_name() {
        let g0 = group(vec![
            member("i1", "za", "running"),
            member("i2", "zb", "stopped"),
        ]);
        let with = |names: &[&str]| {
            let mut g = g0.clone();
            g.suspended = names.iter().map(|n| n.to_string()).collect();
            plan(&g)
        };
        for process in ["ReplaceUnhealthy", "Terminate", "Launch"] {
            let p = with(&[process]);
            assert_eq!(p.mark_unhealthy, ["i2"], "{process}");
            assert!(p.replace.is_empty(), "{process}");
        }
        let p = with(&["HealthCheck"]);
        assert_eq!(p, Plan::default());
        // Rebalancing: AZRebalance, Launch or Terminate.
        let g1 = group(vec![
            member("i1", "za", "running"),
            member("i2", "za", "running"),
            member("i3", "za", "running"),
        ]);
        assert_eq!(plan(&g1).rebalance.len(), 1);
        for process in ["AZRebalance", "Launch", "Terminate"] {
            let mut g = g1.clone();
            g.suspended.insert(process.into());
            assert!(plan(&g).rebalance.is_empty(), "{process}");
        }
    }

    #[test]
    fn an_unbalanced_group_swaps_its_newest_for_the_emptiest_zone() {
        // moto put all four in the first subnet.
        let g = group(vec![
            member("i1", "za", "running"),
            member("i2", "za", "running"),
            member("i3", "za", "running"),
            member("i4", "za", "running"),
        ]);
        let p = plan(&g);
        assert_eq!(p.rebalance, [launch("i4", "sb"), launch("i3", "sb")]);
        // Three zones, one subnet each; five in the first: 2-2-1 after.
        let mut g = group(
            (1..=5)
                .map(|i| member(&format!("i{i}"), "za", "running"))
                .collect(),
        );
        g.subnets.push(("sc".into(), "zc".into()));
        let p = plan(&g);
        assert_eq!(
            p.rebalance,
            [launch("i5", "sb"), launch("i4", "sc"), launch("i3", "sb")]
        );
        // Members in zones the subnets no longer cover are not counted.
        let g = group(vec![
            member("i1", "zq", "running"),
            member("i2", "zq", "running"),
        ]);
        assert_eq!(plan(&g), Plan::default());
    }
}
