//! EKS clusters and nodegroups in progress: real EKS shows a cluster or nodegroup
//! `CREATING` after its create and `DELETING` after its delete (options
//! `cluster_create_ms`, `cluster_delete_ms`, `nodegroup_create_ms`, `nodegroup_delete_ms`);
//! moto makes them `ACTIVE`, or forgets them, at once.
//!
//! The windows are kept in the core's shared table (others read them: a nodegroup being
//! deleted cannot be updated). During a deletion window a describe is answered with the
//! delete's own answer (moto has forgotten the resource), the name cannot be created again,
//! and a cluster with a nodegroup still `DELETING` cannot be deleted, as in EKS.

use std::time::Instant;

use crate::core::emulator::{ready, Answer, BoxFuture, Call, Emulator};
use crate::core::faults::{self, Reply};
use crate::core::ops::Protocol;
use crate::core::windows::{Phase, ResourceKey};
use crate::shared::{deadline, json_str, lock, set_json_status};

/// The longest a deleted nodegroup is held in DELETING for its instances (the data plane
/// normally ends the hold within a few passes; this bounds it if the data plane is switched
/// off meanwhile).
const DRAIN_HOLD_MS: u64 = 3_600_000;

#[derive(Default)]
pub struct EksStates;

/// EKS's answer for creating a cluster or nodegroup under a name that is still being
/// deleted.
fn name_in_use(op: &str, name: &str) -> Reply {
    let what = if op == "CreateCluster" {
        "Cluster"
    } else {
        "NodeGroup"
    };
    faults::eks_error(
        409,
        "ResourceInUseException",
        &format!("{what} already exists with name: {name}"),
    )
}

/// EKS's answer for deleting a cluster whose nodegroups still exist
/// (including ones that are still `DELETING`).
fn cluster_has_nodegroups() -> Reply {
    faults::eks_error(
        409,
        "ResourceInUseException",
        "Cluster has nodegroups attached",
    )
}

/// Sets `status` of the answer's `root` object; a rewrite that is a fault of the proxy's.
fn set_status(answer: &mut Answer, root: &str, status: &str) {
    if let Some(body) = set_json_status(&answer.reply.body, root, status) {
        answer.reply.body = body;
        answer.label("transition");
    }
}

impl Emulator for EksStates {
    fn intercept(&self, call: &Call<'_>) -> Option<(Reply, &'static str)> {
        let host = call.host;
        let info = call.info;
        if info.protocol != Protocol::RestJson {
            return None;
        }
        let now = Instant::now();
        let region = info.region.as_str();
        let mut windows = lock(&host.windows);
        match info.op.as_str() {
            "CreateCluster" | "CreateNodegroup" => {
                // EKS keeps the name of a cluster or nodegroup that is still DELETING:
                // creating it again is refused until it is gone. moto has dropped it already.
                let (key, name) = if info.op == "CreateCluster" {
                    let name = json_str(call.body, None, "name")?;
                    (ResourceKey::cluster(region, &name), name)
                } else {
                    let cluster = info.segment(1)?;
                    let name = json_str(call.body, None, "nodegroupName")?;
                    (ResourceKey::nodegroup(region, cluster, &name), name)
                };
                let deleting = windows.get(&key).is_some_and(|p| p.deleting(now));
                deleting.then(|| (name_in_use(&info.op, &name), "in_use"))
            }
            "DescribeCluster" => {
                let key = ResourceKey::cluster(region, info.segment(1)?);
                let snapshot = windows.replay_deleting(&key, now)?;
                Some((snapshot, "transition"))
            }
            "DescribeNodegroup" => {
                let key = ResourceKey::nodegroup(region, info.segment(1)?, info.segment(3)?);
                let snapshot = windows.replay_deleting(&key, now)?;
                Some((snapshot, "transition"))
            }
            "DeleteNodegroup" => {
                // A nodegroup EKS is still deleting exists: a second delete is refused with
                // 409 ResourceInUseException, "the specified resource is in use" (EKS API
                // reference, DeleteNodegroup, Errors), not the 404 of moto, which forgot it.
                let (cluster, ng) = (info.segment(1)?, info.segment(3)?);
                let key = ResourceKey::nodegroup(region, cluster, ng);
                let deleting = windows.get(&key).is_some_and(|p| p.deleting(now));
                deleting.then(|| {
                    (
                        faults::eks_error_with(
                            409,
                            "ResourceInUseException",
                            &format!("Nodegroup {ng} is currently in DELETING state"),
                            &[("clusterName", Some(cluster)), ("nodegroupName", Some(ng))],
                        ),
                        "in_use",
                    )
                })
            }
            "DeleteCluster" => {
                // EKS refuses to delete a cluster while any nodegroup exists, and
                // one that is still DELETING exists; moto has already dropped it.
                let cluster = info.segment(1)?;
                let busy = windows.of_kind("nodegroup", region).any(|(key, phase)| {
                    key.names.first().map(String::as_str) == Some(cluster) && phase.deleting(now)
                });
                busy.then(|| (cluster_has_nodegroups(), "nodegroups_deleting"))
            }
            _ => None,
        }
    }

    /// Opens windows when a create or delete answer arrives, and shows them in describes.
    fn rewrite<'a>(&'a self, call: &'a Call<'a>, answer: &'a mut Answer) -> BoxFuture<'a, ()> {
        let host = call.host;
        let (info, cfg) = (call.info, call.cfg);
        if info.protocol != Protocol::RestJson {
            return ready(());
        }
        let region = info.region.as_str();
        let now = answer.sent;
        let mut windows = lock(&host.windows);
        match info.op.as_str() {
            "CreateCluster" if cfg.cluster_create_ms > 0 => {
                if let Some(name) = json_str(&answer.reply.body, Some("cluster"), "name") {
                    let until = deadline(cfg.cluster_create_ms);
                    windows.insert(
                        ResourceKey::cluster(region, &name),
                        Phase::Creating { until },
                    );
                    set_status(answer, "cluster", "CREATING");
                }
            }
            "DescribeCluster" => {
                if let Some(name) = info.segment(1) {
                    if windows.creating(&ResourceKey::cluster(region, name), now) {
                        set_status(answer, "cluster", "CREATING");
                    }
                }
            }
            "DeleteCluster" => {
                if let Some(name) = info.segment(1) {
                    let key = ResourceKey::cluster(region, name);
                    windows.remove(&key);
                    if cfg.cluster_delete_ms > 0 {
                        set_status(answer, "cluster", "DELETING");
                        let until = deadline(cfg.cluster_delete_ms);
                        let snapshot = answer.reply.clone();
                        windows.insert(key, Phase::Deleting { until, snapshot });
                    }
                }
            }
            // With the data plane, EKS's nodegroup is ACTIVE only once its instances joined
            // the cluster (EKS API reference, `Nodegroup.status`; user guide,
            // `nodes/create-managed-node-group.adoc`): CREATING until the data plane
            // clears the mark.
            "CreateNodegroup" if cfg.data_plane && cfg.kube_url.is_some() => {
                let ng = json_str(&answer.reply.body, Some("nodegroup"), "nodegroupName");
                if let (Some(cluster), Some(ng)) = (info.segment(1), ng) {
                    let key = ResourceKey::nodegroup(region, cluster, &ng);
                    if cfg.nodegroup_create_ms > 0 {
                        let until = deadline(cfg.nodegroup_create_ms);
                        windows.insert(key.clone(), Phase::Creating { until });
                    }
                    windows.clear_draining(&key);
                    windows.set_joining(key, "CREATING");
                    set_status(answer, "nodegroup", "CREATING");
                }
            }
            "CreateNodegroup" if cfg.nodegroup_create_ms > 0 => {
                let ng = json_str(&answer.reply.body, Some("nodegroup"), "nodegroupName");
                if let (Some(cluster), Some(ng)) = (info.segment(1), ng) {
                    let until = deadline(cfg.nodegroup_create_ms);
                    windows.insert(
                        ResourceKey::nodegroup(region, cluster, &ng),
                        Phase::Creating { until },
                    );
                    set_status(answer, "nodegroup", "CREATING");
                }
            }
            "DescribeNodegroup" => {
                if let (Some(cluster), Some(ng)) = (info.segment(1), info.segment(3)) {
                    let key = ResourceKey::nodegroup(region, cluster, ng);
                    if windows.creating(&key, now) {
                        set_status(answer, "nodegroup", "CREATING");
                    } else if let Some(status) = windows.joining(&key) {
                        set_status(answer, "nodegroup", status);
                    }
                }
            }
            "DeleteNodegroup" => {
                if let (Some(cluster), Some(ng)) = (info.segment(1), info.segment(3)) {
                    let key = ResourceKey::nodegroup(region, cluster, ng);
                    windows.remove(&key);
                    windows.clear_joining(&key);
                    if cfg.data_plane && cfg.kube_url.is_some() {
                        // DELETING until the data plane has drained and terminated the
                        // instances, and at least for the configured window.
                        set_status(answer, "nodegroup", "DELETING");
                        let floor = deadline(cfg.nodegroup_delete_ms);
                        let snapshot = answer.reply.clone();
                        windows.insert(
                            key.clone(),
                            Phase::Deleting {
                                until: floor.max(deadline(DRAIN_HOLD_MS)),
                                snapshot,
                            },
                        );
                        windows.set_draining(key, floor);
                    } else if cfg.nodegroup_delete_ms > 0 {
                        set_status(answer, "nodegroup", "DELETING");
                        let until = deadline(cfg.nodegroup_delete_ms);
                        let snapshot = answer.reply.clone();
                        windows.insert(key, Phase::Deleting { until, snapshot });
                    }
                }
            }
            _ => {}
        }
        ready(())
    }
}
