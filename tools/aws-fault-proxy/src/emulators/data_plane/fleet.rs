//! What a managed nodegroup's instances should become in one pass: a pure decision from
//! the nodegroup (desired size, subnets, launch template version) and its running
//! instances, as EC2 Auto Scaling and EKS's update workflow would make it.
//!
//! - Scaling (EC2 Auto Scaling, which backs every managed nodegroup): instances are added to
//!   the subnet with the fewest (so a nodegroup spreads over its subnets round-robin,
//!   "Availability Zone rebalancing"); on scale-in one goes from the zone with the most
//!   (the default termination policy's first criterion, EC2 Auto Scaling user guide
//!   "Configure termination policies"). Its later criteria (billing hour, random) cannot
//!   be reproduced; the most recently launched instance goes first, so the choice is
//!   deterministic.
//! - A new launch template version (EKS user guide, `nodes/managed-node-update-behavior.adoc`,
//!   default strategy): new instances first, up to a surge of the larger of twice the
//!   number of zones and `maxUnavailable`; once every new instance has joined the cluster,
//!   at most `maxUnavailable` old ones per pass are drained and terminated, until none is
//!   left.

use std::collections::BTreeMap;

/// One running (or pending) instance of the nodegroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Member {
    pub id: String,
    pub subnet: String,
    pub zone: String,
    /// ISO 8601, sorts as time.
    pub launch_time: String,
    /// The launch template version it was launched from (`None` without a template).
    pub template_version: Option<String>,
    /// Whether its Node is in the cluster.
    pub joined: bool,
}

/// What the nodegroup asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Target {
    pub desired: usize,
    /// In the nodegroup's order.
    pub subnets: Vec<String>,
    /// How many availability zones the subnets span.
    pub zones: usize,
    pub template_version: Option<String>,
    /// `updateConfig.maxUnavailable` resolved to a number (at least 1).
    pub max_unavailable: usize,
}

/// What to do in this pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// One subnet per instance to launch.
    pub launch: Vec<String>,
    /// Instances to drain and terminate.
    pub terminate: Vec<String>,
    /// Whether the terminations replace instances of an earlier launch template version
    /// (their nodes are also excluded from load balancers first).
    pub replacing: bool,
}

pub fn plan(target: &Target, members: &[Member]) -> Plan {
    let (current, outdated): (Vec<&Member>, Vec<&Member>) = members
        .iter()
        .partition(|m| m.template_version == target.template_version);
    if outdated.is_empty() {
        return Plan {
            launch: subnets_for(
                target,
                &current,
                target.desired.saturating_sub(current.len()),
            ),
            terminate: scale_in(&current, current.len().saturating_sub(target.desired)),
            replacing: false,
        };
    }
    let surge = (2 * target.zones).max(target.max_unavailable).max(1);
    let room = (target.desired + surge).saturating_sub(members.len());
    let missing = target.desired.saturating_sub(current.len());
    let launch = subnets_for(target, &current, missing.min(room));
    let mut terminate = Vec::new();
    if launch.is_empty() && current.iter().all(|m| m.joined) {
        let mut old = outdated;
        old.sort_by(|a, b| (&a.launch_time, &a.id).cmp(&(&b.launch_time, &b.id)));
        terminate = old
            .iter()
            .take(target.max_unavailable.max(1))
            .map(|m| m.id.clone())
            .collect();
    }
    Plan {
        launch,
        terminate,
        replacing: true,
    }
}

/// Subnets for `n` new instances: each to the subnet with the fewest, ties in the
/// nodegroup's order.
fn subnets_for(target: &Target, current: &[&Member], n: usize) -> Vec<String> {
    if target.subnets.is_empty() {
        return Vec::new();
    }
    let mut counts: Vec<usize> = target
        .subnets
        .iter()
        .map(|s| current.iter().filter(|m| &m.subnet == s).count())
        .collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Some((i, _)) = counts.iter().enumerate().min_by_key(|(i, c)| (**c, *i)) else {
            break;
        };
        counts[i] += 1;
        out.push(target.subnets[i].clone());
    }
    out
}

/// `n` instances to end: each from the zone with the most left, there the most recently
/// launched.
fn scale_in(current: &[&Member], n: usize) -> Vec<String> {
    let mut left: Vec<&Member> = current.to_vec();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &left {
            *per_zone.entry(m.zone.as_str()).or_default() += 1;
        }
        let Some(zone) = per_zone
            .iter()
            .max_by_key(|(zone, count)| (**count, std::cmp::Reverse(**zone)))
            .map(|(zone, _)| zone.to_string())
        else {
            break;
        };
        let Some(pos) = left
            .iter()
            .enumerate()
            .filter(|(_, m)| m.zone == zone)
            .max_by(|(_, a), (_, b)| (&a.launch_time, &a.id).cmp(&(&b.launch_time, &b.id)))
            .map(|(i, _)| i)
        else {
            break;
        };
        out.push(left.remove(pos).id.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, subnet: &str, version: Option<&str>, joined: bool) -> Member {
        Member {
            id: id.into(),
            subnet: subnet.into(),
            zone: format!("z-{subnet}"),
            launch_time: format!("2026-01-01T00:00:0{}Z", id.trim_start_matches('i')),
            template_version: version.map(str::to_string),
            joined,
        }
    }

    fn target(desired: usize, version: Option<&str>) -> Target {
        Target {
            desired,
            subnets: vec!["a".into(), "b".into()],
            zones: 2,
            template_version: version.map(str::to_string),
            max_unavailable: 1,
        }
    }

    #[test]
    fn scales_round_robin_and_in_from_the_fullest_zone() {
        let p = plan(&target(3, None), &[]);
        assert_eq!(p.launch, vec!["a", "b", "a"]);
        assert!(p.terminate.is_empty() && !p.replacing);
        let members = [
            member("i1", "a", None, true),
            member("i2", "b", None, true),
            member("i3", "a", None, true),
        ];
        let p = plan(&target(3, None), &members);
        assert_eq!(p, Plan::default(), "nothing to do");
        let p = plan(&target(1, None), &members);
        // Zone a has two: its newest (i3) first; then the zones are even, and the newest
        // of the first zone in order goes.
        assert_eq!(p.terminate, vec!["i3", "i1"]);
        let p = plan(&target(4, None), &members[..1]);
        assert_eq!(p.launch, vec!["b", "a", "b"]);
    }

    #[test]
    fn a_new_version_surges_then_replaces() {
        let old = [
            member("i1", "a", Some("1"), true),
            member("i2", "b", Some("1"), true),
        ];
        // New ones first; nothing old goes yet.
        let p = plan(&target(2, Some("2")), &old);
        assert_eq!(p.launch, vec!["a", "b"]);
        assert!(p.terminate.is_empty() && p.replacing);
        // New ones launched but not joined: wait.
        let mut all = old.to_vec();
        all.push(member("i3", "a", Some("2"), false));
        all.push(member("i4", "b", Some("2"), false));
        assert_eq!(
            plan(&target(2, Some("2")), &all).terminate,
            Vec::<String>::new()
        );
        // Joined: one old one (maxUnavailable) per pass, the oldest first.
        all[2].joined = true;
        all[3].joined = true;
        let p = plan(&target(2, Some("2")), &all);
        assert!(p.launch.is_empty());
        assert_eq!(p.terminate, vec!["i1"]);
        // The surge bounds the launches: one zone, maxUnavailable 1, four old nodes.
        let t = Target {
            desired: 4,
            subnets: vec!["a".into()],
            zones: 1,
            template_version: Some("2".into()),
            max_unavailable: 1,
        };
        let four: Vec<Member> = (1..=4)
            .map(|i| member(&format!("i{i}"), "a", Some("1"), true))
            .collect();
        assert_eq!(plan(&t, &four).launch.len(), 2);
        // Scaled to zero mid-update: the old ones go, one per pass.
        assert_eq!(plan(&target(0, Some("2")), &old).terminate, vec!["i1"]);
    }
}
