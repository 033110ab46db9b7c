//! What the VPC resource controller does for security groups for pods (its rules: `vrc.rs`),
//! carried out in moto and the API server as part of step 4 (`pods.rs`): a node's trunk
//! interface and its `vpc.amazonaws.com/pod-eni` capacity, the webhook's request on the pods
//! a SecurityGroupPolicy selects, their branch interfaces and annotations, and the branches
//! of pods that are gone, deleted after the cool-down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::core::emulator::Pass;
use crate::shared::{form_encode, lock};

use super::cni;
use super::ec2::{Eni, Instance};
use super::objects::{node_name_of, pod_path};
use super::pods::{attach_new, NetView, NodeNet};
use super::vrc::{self, POD_ENI};
use super::{DataPlane, KubeSide, CLUSTER_TAG_PREFIX, TAG_AWS_CLUSTER};

/// The cluster an instance is tagged for: EKS's tag on every cluster instance, else the
/// self-managed node's `kubernetes.io/cluster/<name>=owned` or Auto Mode's tag
/// (`super::tagged_cluster`).
fn cluster_of(instance: &Instance) -> Option<String> {
    instance
        .tag(TAG_AWS_CLUSTER)
        .map(str::to_string)
        .or_else(|| super::tagged_cluster(instance))
}

/// The tags the controller puts on its interfaces (`pkg/aws/ec2/api/helper.go`: owner and
/// cluster; `trunk.go`: the node's instance id).
fn controller_tags(net: &NodeNet) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    tags.insert(vrc::TAG_OWNER.to_string(), vrc::OWNER.to_string());
    tags.insert(cni::TAG_INSTANCE.to_string(), net.instance_id.clone());
    if let Some(c) = &net.cluster {
        tags.insert(format!("{CLUSTER_TAG_PREFIX}{c}"), "owned".to_string());
    }
    tags
}

impl DataPlane {
    /// A node's trunk: made and attached once ipamd runs with `ENABLE_POD_ENI=true` and has
    /// left its slot free, on a trunk-compatible type; then the Node is labelled and
    /// advertises its branch interfaces.
    pub(super) async fn node_trunk(
        &self,
        view: &mut NetView<'_>,
        instance: &Instance,
        side: &KubeSide<'_>,
        net: &mut NodeNet,
    ) -> Result<(), String> {
        net.instance_id = instance.id.clone();
        net.cluster = cluster_of(instance);
        let Some(branches) = vrc::branch_interfaces(&instance.instance_type) else {
            return Ok(());
        };
        let Some((subnet_id, groups)) = net.target.clone().filter(|_| net.pod_eni) else {
            return Ok(());
        };
        if net.trunk.is_none() {
            if net.attached >= net.max_enis {
                // ipamd asks for a trunk only with a slot free (`tryEnableSecurityGroupsForPods`:
                // "No slot available for a trunk ENI to be attached").
                return Ok(());
            }
            let subnet = view
                .subnet(&subnet_id)
                .await?
                .ok_or_else(|| format!("subnet {subnet_id} not found"))?;
            let taken = view.taken_in(&subnet.id).await?;
            let ip = cni::free_ips(&subnet.cidr, &taken, 1)
                .into_iter()
                .next()
                .ok_or_else(|| format!("subnet {} has no free address for a trunk", subnet.id))?;
            let enis = view.attached(&instance.id).await?;
            let trunk = attach_new(
                view,
                instance,
                &subnet.id,
                &ip,
                &groups,
                vrc::TRUNK_DESCRIPTION.to_string(),
                controller_tags(net),
                &enis,
            )
            .await?;
            net.attached += 1;
            net.trunk = Some(trunk);
        }
        let path = format!("/api/v1/nodes/{}", form_encode(&net.name));
        if net.node["metadata"]["labels"][vrc::HAS_TRUNK_LABEL] != "true" {
            side.kube
                .merge_patch(
                    &path,
                    &json!({"metadata": {"labels": {vrc::HAS_TRUNK_LABEL: "true"}}}),
                )
                .await?;
            net.node["metadata"]["labels"][vrc::HAS_TRUNK_LABEL] = json!("true");
        }
        if vrc::node_branches(&net.node) != branches as usize {
            let n = json!(branches.to_string());
            side.kube
                .merge_patch(
                    &format!("{path}/status"),
                    &json!({"status": {"capacity": {POD_ENI: n}, "allocatable": {POD_ENI: n}}}),
                )
                .await?;
            net.node["status"]["capacity"][POD_ENI] = n.clone();
            net.node["status"]["allocatable"][POD_ENI] = n;
        }
        Ok(())
    }

    /// The webhook, standing in for its admission of the pods of this pass that are not
    /// bound yet (the fake API server calls no webhooks): one a policy selects asks for a
    /// branch interface.
    pub(super) async fn sgp_webhook(
        &self,
        side: &KubeSide<'_>,
        pods: &mut [Value],
        policies: &[Value],
        accounts: &mut BTreeMap<(String, String), Value>,
    ) -> Result<(), String> {
        if policies.is_empty() {
            return Ok(());
        }
        for pod in pods.iter_mut() {
            let unbound = node_name_of(pod).is_none()
                && pod.pointer("/metadata/deletionTimestamp").is_none()
                && pod.pointer("/spec/hostNetwork") != Some(&Value::Bool(true));
            if !unbound || vrc::requests_pod_eni(pod) {
                continue;
            }
            let account = service_account(side, pod, accounts).await?;
            if vrc::matching_groups(policies, pod, &account).is_empty() {
                continue;
            }
            let Some(patch) = vrc::pod_eni_request(pod) else {
                continue;
            };
            side.kube.strategic_patch(&pod_path(pod), &patch).await?;
            if let Some(first) = pod.pointer_mut("/spec/containers/0") {
                let one = json!({ POD_ENI: "1" });
                first["resources"]["limits"] = one.clone();
                first["resources"]["requests"] = one;
            }
        }
        Ok(())
    }

    /// Branch interfaces for the bound pods that asked for one and have none yet, on nodes
    /// with a trunk and a VLAN left; then the branches no pod names any more are deleted once
    /// `branch_cooldown_ms` has passed since the data plane first saw them so.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn sgp_branches(
        &self,
        pass: &Pass<'_>,
        side: &KubeSide<'_>,
        pods: &mut [Value],
        nets: &[NodeNet],
        views: &mut [NetView<'_>],
        policies: &[Value],
        accounts: &mut BTreeMap<(String, String), Value>,
    ) -> Result<(), String> {
        self.cool_down_branches(pass, pods, views).await?;
        for pod in pods.iter_mut() {
            if !vrc::requests_pod_eni(pod)
                || vrc::annotated_branch(pod).is_some()
                || pod.pointer("/metadata/deletionTimestamp").is_some()
            {
                continue;
            }
            let Some(net) = node_name_of(pod).and_then(|n| nets.iter().find(|x| x.name == n))
            else {
                continue;
            };
            let (Some(trunk), Some(view)) = (&net.trunk, views.get_mut(net.scope)) else {
                continue;
            };
            let mut groups =
                vrc::matching_groups(policies, pod, &service_account(side, pod, accounts).await?);
            if groups.is_empty() {
                // "Pod will get the instance security group" (`provider.go`).
                groups = trunk.groups.clone();
            }
            let theirs: Vec<Eni> = view
                .all()
                .await?
                .iter()
                .filter(|e| e.tags.get(vrc::TAG_TRUNK) == Some(&trunk.id))
                .cloned()
                .collect();
            let limit = vrc::branch_interfaces(
                net.node["metadata"]["labels"]["node.kubernetes.io/instance-type"]
                    .as_str()
                    .unwrap_or_default(),
            )
            .unwrap_or(0) as usize;
            let vlans: Vec<u32> = theirs
                .iter()
                .filter_map(|e| e.tags.get(vrc::TAG_VLAN)?.parse().ok())
                .collect();
            let (true, Some(vlan)) = (theirs.len() < limit, vrc::free_vlan(&vlans)) else {
                // `ErrCurrentlyAtMaxCapacity`: tried again later.
                continue;
            };
            let subnet = view
                .subnet(&trunk.subnet_id)
                .await?
                .ok_or_else(|| format!("subnet {} not found", trunk.subnet_id))?;
            let taken = view.taken_in(&subnet.id).await?;
            let Some(ip) = cni::free_ips(&subnet.cidr, &taken, 1).into_iter().next() else {
                continue;
            };
            let mut tags = controller_tags(net);
            tags.insert(vrc::TAG_VLAN.to_string(), vlan.to_string());
            tags.insert(vrc::TAG_TRUNK.to_string(), trunk.id.clone());
            let (id, mac) = view
                .ec2
                .create_eni(&subnet.id, &ip, &groups, vrc::BRANCH_DESCRIPTION, &tags)
                .await?;
            view.created(Eni {
                id: id.clone(),
                subnet_id: subnet.id.clone(),
                status: "available".to_string(),
                description: vrc::BRANCH_DESCRIPTION.to_string(),
                private_ips: vec![(ip.clone(), true)],
                groups,
                tags,
                mac: mac.clone(),
                ..Eni::default()
            });
            let annotation = vrc::pod_eni_annotation(&id, &mac, &ip, vlan, &subnet.cidr);
            side.kube
                .merge_patch(
                    &pod_path(pod),
                    &json!({"metadata": {"annotations": {POD_ENI: annotation}}}),
                )
                .await?;
            pod["metadata"]["annotations"][POD_ENI] = json!(annotation);
        }
        Ok(())
    }

    /// Deletes the branches no pod names, once they have been so for the cool-down (the
    /// controller keeps a deleted pod's branch that long before deleting it, so that its
    /// address is not reused while other nodes' rules still name it).
    async fn cool_down_branches(
        &self,
        pass: &Pass<'_>,
        pods: &[Value],
        views: &mut [NetView<'_>],
    ) -> Result<(), String> {
        let named: BTreeSet<String> = pods
            .iter()
            .filter_map(|p| vrc::annotated_branch(p).map(|(id, _)| id))
            .collect();
        let cooldown = Duration::from_millis(pass.cfg.branch_cooldown_ms);
        for view in views.iter_mut() {
            let branches: Vec<String> = view
                .all()
                .await?
                .iter()
                .filter(|e| e.description == vrc::BRANCH_DESCRIPTION)
                .map(|e| e.id.clone())
                .collect();
            let mut gone = false;
            for id in branches {
                if named.contains(&id) {
                    self.remember(pass, |m| {
                        m.branch_orphaned.remove(&id);
                    });
                    continue;
                }
                let since = *lock(&self.memory)
                    .branch_orphaned
                    .entry(id.clone())
                    .or_insert_with(Instant::now);
                if since.elapsed() >= cooldown {
                    view.ec2.delete_eni(&id).await?;
                    gone = true;
                    self.remember(pass, |m| {
                        m.branch_orphaned.remove(&id);
                    });
                }
            }
            if gone {
                view.changed();
            }
        }
        Ok(())
    }
}

/// A pod's service account (`spec.serviceAccountName`, `default` if unset), read once a pass;
/// one that does not exist has no labels.
async fn service_account(
    side: &KubeSide<'_>,
    pod: &Value,
    accounts: &mut BTreeMap<(String, String), Value>,
) -> Result<Value, String> {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string();
    if let Some(sa) = accounts.get(&(ns.clone(), name.clone())) {
        return Ok(sa.clone());
    }
    let path = format!(
        "/api/v1/namespaces/{}/serviceaccounts/{}",
        form_encode(&ns),
        form_encode(&name)
    );
    let sa = side.kube.get(&path).await?.unwrap_or(Value::Null);
    accounts.insert((ns, name), sa.clone());
    Ok(sa)
}
