//! Transition windows: a resource moto has already finished creating or deleting that the
//! client should still see in progress (`CREATING`, `DELETING`…), kept by the core so that
//! every emulator sees the same windows (a nodegroup in its `DELETING` window cannot be
//! updated, a cluster with one cannot be deleted).
//!
//! Each window stores its own deadline, computed from the configuration in force when the
//! create/delete answer arrived; later config changes affect only later windows, so a test
//! cannot accidentally revive an old one. Which operations open a window, and how an answer
//! shows it, is the emulators' business.

use std::collections::HashMap;
use std::time::Instant;

use super::faults::Reply;

/// A resource moto already finished but the client should see in progress.
#[derive(Clone, Debug)]
pub enum Phase {
    Creating {
        until: Instant,
    },
    /// moto has forgotten the resource; `snapshot` is the describe answer to
    /// give meanwhile (its last known body, status set to the deleting one).
    Deleting {
        until: Instant,
        snapshot: Reply,
    },
}

impl Phase {
    pub fn active(&self, now: Instant) -> bool {
        match self {
            Phase::Creating { until } | Phase::Deleting { until, .. } => now < *until,
        }
    }

    /// Whether this is a creation window still open at `now`.
    pub fn creating(&self, now: Instant) -> bool {
        matches!(self, Phase::Creating { .. }) && self.active(now)
    }

    /// Whether this is a deletion window still open at `now`.
    pub fn deleting(&self, now: Instant) -> bool {
        matches!(self, Phase::Deleting { .. }) && self.active(now)
    }
}

/// Which resource a window is about: its kind, the region (moto keeps one backend per
/// region) and its names from the outermost (a nodegroup: cluster, nodegroup).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceKey {
    pub kind: &'static str,
    pub region: String,
    pub names: Vec<String>,
}

impl ResourceKey {
    /// An EKS cluster.
    pub fn cluster(region: &str, cluster: &str) -> ResourceKey {
        ResourceKey {
            kind: "cluster",
            region: region.to_string(),
            names: vec![cluster.to_string()],
        }
    }

    /// An EKS nodegroup.
    pub fn nodegroup(region: &str, cluster: &str, nodegroup: &str) -> ResourceKey {
        ResourceKey {
            kind: "nodegroup",
            region: region.to_string(),
            names: vec![cluster.to_string(), nodegroup.to_string()],
        }
    }
}

/// The open windows of all resources; forgotten by `POST /__proxy/reset`.
#[derive(Debug, Default)]
pub struct Windows {
    phases: HashMap<ResourceKey, Phase>,
    /// Nodegroups whose instances have not all joined the cluster yet (the data plane
    /// clears the mark): EKS reports them `CREATING` or `UPDATING` until then, past any
    /// window (EKS API reference, `Nodegroup.status`).
    joining: HashMap<ResourceKey, &'static str>,
    /// Nodegroups deleted while instances of theirs may still run, with the end of their
    /// configured DELETING window: EKS reports a nodegroup DELETING until its Auto Scaling
    /// group has drained and terminated every instance (EKS user guide, "Delete a managed
    /// node group"); the data plane ends the window then (`finish_draining`).
    draining: HashMap<ResourceKey, Instant>,
}

impl Windows {
    pub fn get(&self, key: &ResourceKey) -> Option<&Phase> {
        self.phases.get(key)
    }

    pub fn insert(&mut self, key: ResourceKey, phase: Phase) {
        self.phases.insert(key, phase);
    }

    pub fn remove(&mut self, key: &ResourceKey) {
        self.phases.remove(key);
    }

    /// Whether `key` is in its creation window at `now`; a creation window found over is
    /// forgotten (from then on moto's own answer is right).
    pub fn creating(&mut self, key: &ResourceKey, now: Instant) -> bool {
        match self.phases.get(key) {
            Some(phase @ Phase::Creating { .. }) if phase.active(now) => true,
            Some(Phase::Creating { .. }) => {
                self.phases.remove(key);
                false
            }
            _ => false,
        }
    }

    /// The snapshot of a resource in its deletion window, to answer a describe with; a
    /// deletion window found over is forgotten.
    pub fn replay_deleting(&mut self, key: &ResourceKey, now: Instant) -> Option<Reply> {
        match self.phases.get(key)? {
            Phase::Deleting { snapshot, until } if now < *until => Some(snapshot.clone()),
            Phase::Deleting { .. } => {
                self.phases.remove(key);
                None
            }
            Phase::Creating { .. } => None,
        }
    }

    /// Marks a nodegroup as waiting for its nodes, reported with `status`.
    pub fn set_joining(&mut self, key: ResourceKey, status: &'static str) {
        self.joining.insert(key, status);
    }

    pub fn clear_joining(&mut self, key: &ResourceKey) {
        self.joining.remove(key);
    }

    /// The status a nodegroup waiting for its nodes is reported with.
    pub fn joining(&self, key: &ResourceKey) -> Option<&'static str> {
        self.joining.get(key).copied()
    }

    /// Holds a nodegroup's deletion window open until the data plane has terminated its
    /// instances; `floor` is when the configured window would have ended.
    pub fn set_draining(&mut self, key: ResourceKey, floor: Instant) {
        self.draining.insert(key, floor);
    }

    /// The nodegroups held in DELETING for their instances, in one region.
    pub fn draining_in<'a>(
        &'a self,
        region: &'a str,
    ) -> impl Iterator<Item = &'a ResourceKey> + 'a {
        self.draining.keys().filter(move |k| k.region == region)
    }

    /// Its instances are gone: the deletion window ends at its configured end (at once if
    /// that has passed).
    pub fn finish_draining(&mut self, key: &ResourceKey) {
        if let Some(floor) = self.draining.remove(key) {
            if let Some(Phase::Deleting { until, .. }) = self.phases.get_mut(key) {
                *until = floor;
            }
        }
    }

    /// Forgets a hold (the nodegroup's name was used again).
    pub fn clear_draining(&mut self, key: &ResourceKey) {
        self.draining.remove(key);
    }

    /// All windows of one kind in one region, with their keys.
    pub fn of_kind<'a>(
        &'a self,
        kind: &'a str,
        region: &'a str,
    ) -> impl Iterator<Item = (&'a ResourceKey, &'a Phase)> + 'a {
        self.phases
            .iter()
            .filter(move |(k, _)| k.kind == kind && k.region == region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn windows_end_and_are_forgotten() {
        let mut w = Windows::default();
        let key = ResourceKey::cluster("r", "c");
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        w.insert(key.clone(), Phase::Creating { until: later });
        assert!(w.creating(&key, now));
        assert!(!w.creating(&key, later));
        assert!(w.get(&key).is_none(), "a window found over is forgotten");

        let snapshot = Reply::json(200, &serde_json::json!({}));
        w.insert(
            key.clone(),
            Phase::Deleting {
                until: later,
                snapshot,
            },
        );
        assert!(!w.creating(&key, now));
        assert!(w.replay_deleting(&key, now).is_some());
        assert_eq!(w.of_kind("cluster", "r").count(), 1);
        assert_eq!(w.of_kind("nodegroup", "r").count(), 0);
        assert!(w.replay_deleting(&key, later).is_none());
        assert!(w.get(&key).is_none());
    }
}
