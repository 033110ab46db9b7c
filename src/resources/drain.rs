//! Draining a node as `kubectl drain` does, for whatever takes nodes away: `eksnet roll`
//! (`nodes::roll`) and the self-managed node group's replacement and delete. Cordon, then
//! every pod but a DaemonSet's or a static pod's mirror evicted through the Eviction API (a
//! PodDisruptionBudget's 429 waited out, never forced), then a wait until the evicted pods'
//! owners run them elsewhere. One drain in the crate; its callers bound it in time.

use super::ResourceError;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn kube_err(op: &'static str) -> impl Fn(kube::Error) -> ResourceError {
    move |e| crate::cloud::kube::error(op, e).into()
}

pub fn object_name(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or("?")
    )
}

pub fn on_node(p: &Pod) -> Option<&str> {
    p.spec.as_ref()?.node_name.as_deref()
}

pub fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

/// Not ended and not being deleted.
pub fn active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), Some("Succeeded" | "Failed"))
}

/// A pod a drain evicts: not a DaemonSet's (it stays with its node), not a static pod's
/// mirror, still active (as `kubectl drain` decides).
pub fn evictable(p: &Pod) -> bool {
    let daemon = p
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    let mirror = p
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    active(p) && !daemon && !mirror
}

/// The scheduler found no node for it (`PodScheduled` False, `Unschedulable`).
pub fn unschedulable(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
}

pub fn matches_selector(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expr = sel.match_expressions.iter().flatten().all(|e| {
        let have = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => have.is_some_and(|h| values.contains(h)),
            "NotIn" => have.is_none_or(|h| !values.contains(h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    by_label && by_expr
}

/// Whether the budget selects the pod (same namespace; an empty selector selects every pod
/// of it, policy/v1).
pub fn budget_covers(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if pdb.metadata.namespace != pod.metadata.namespace {
        return false;
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| matches_selector(s, &labels))
}

/// An absolute number or a percentage of `of` (rounded up, as the disruption controller
/// does for minAvailable and maxUnavailable).
pub fn resolve(v: &IntOrString, of: usize) -> Option<usize> {
    match v {
        IntOrString::Int(i) => usize::try_from(*i).ok(),
        IntOrString::String(s) => {
            let pct: usize = s.strip_suffix('%')?.trim().parse().ok()?;
            Some((pct * of).div_ceil(100))
        }
    }
}

/// Why the budget can never allow one eviction of the `covered` pods it selects.
pub fn never_allows(pdb: &PodDisruptionBudget, covered: usize) -> Option<String> {
    let spec = pdb.spec.as_ref()?;
    if let Some(max) = spec
        .max_unavailable
        .as_ref()
        .and_then(|m| resolve(m, covered))
    {
        return (max == 0).then(|| "maxUnavailable is 0".to_string());
    }
    let min = spec
        .min_available
        .as_ref()
        .and_then(|m| resolve(m, covered))?;
    (min >= covered && covered > 0)
        .then(|| format!("minAvailable {min} with {covered} pod(s) it selects"))
}

pub async fn list_pods(client: &kube::Client) -> Result<Vec<Pod>, ResourceError> {
    Ok(Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list pods"))?
        .items)
}

/// `aws:///us-west-2a/i-0abc` → (`us-west-2a`, `i-0abc`).
pub fn provider_instance(node: &Node) -> Option<(String, String)> {
    let id = node.spec.as_ref()?.provider_id.as_deref()?;
    let rest = id.strip_prefix("aws:///")?;
    let (zone, instance) = rest.split_once('/')?;
    instance
        .starts_with("i-")
        .then(|| (zone.to_string(), instance.to_string()))
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Where a drain's progress lines go.
pub type Say<'a> = Box<dyn Fn(String) + Send + Sync + 'a>;
/// Where a drain notes what it waits for now: the node, and what.
pub type NoteWait<'a> = Box<dyn Fn(&str, String) + Send + Sync + 'a>;

/// One drain's context: the cluster's client, the pause between two looks, and where its
/// progress goes.
pub struct Drainer<'a> {
    pub client: kube::Client,
    pub pause: Duration,
    /// Progress lines (`NODE: …`), for stderr.
    pub say: Say<'a>,
    /// What the drain of a node waits for now (node, what), for the caller's timeout report.
    pub waiting: NoteWait<'a>,
}

impl Drainer<'_> {
    pub async fn cordon(&self, node: &str) -> Result<(), ResourceError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        match nodes
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"unschedulable": true}})),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Gone already (its instance ended): nothing to cordon.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(kube_err("cordon node")(e)),
        }
    }

    /// Evicts the node's pods until none is left, then waits until the pods of the same
    /// owners run elsewhere.
    /// Drains until the node holds no pod to evict once the evicted ones run elsewhere. A
    /// scheduler whose view predates the cordon can still bind a pod to the node after the
    /// first look (the scheduler's binding and the cordon race, as under `kubectl drain`);
    /// ending the instance then would kill it outside its budget, so the node is looked at
    /// again right before it goes.
    pub async fn drain(&self, node: &str) -> Result<(), ResourceError> {
        loop {
            self.drain_once(node).await?;
            // One more pause first: a binding already under way when the node was cordoned
            // lands by then.
            tokio::time::sleep(self.pause).await;
            let pods = list_pods(&self.client).await?;
            let late = pods
                .iter()
                .filter(|p| on_node(p) == Some(node) && evictable(p))
                .count();
            if late == 0 {
                return Ok(());
            }
            (self.say)(format!(
                "{node}: {late} pod(s) bound to it after its cordon; evicting them too"
            ));
        }
    }

    async fn drain_once(&self, node: &str) -> Result<(), ResourceError> {
        let mut owners: BTreeSet<String> = BTreeSet::new();
        loop {
            let pods = list_pods(&self.client).await?;
            let left: Vec<&Pod> = pods
                .iter()
                .filter(|p| on_node(p) == Some(node) && evictable(p))
                .collect();
            if left.is_empty() {
                break;
            }
            let mut blocked = Vec::new();
            // The budgets are named before each eviction: the client itself retries a 429 a
            // few times, and a timeout during those retries must still say who refuses.
            let pdbs = Api::<PodDisruptionBudget>::all(self.client.clone())
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            let covering = |p: &Pod| -> String {
                let names: Vec<String> = pdbs
                    .iter()
                    .filter(|b| budget_covers(b, p))
                    .map(|b| object_name(&b.metadata))
                    .collect();
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            };
            for p in left {
                owners.extend(
                    p.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .map(|o| o.uid.clone()),
                );
                let ns = p
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                let name = p.metadata.name.clone().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
                (self.waiting)(
                    node,
                    format!(
                        "the eviction of {ns}/{name} (PodDisruptionBudget: {})",
                        covering(p)
                    ),
                );
                match api.evict(&name, &EvictParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    // The budget allows no disruption now: wait, as `kubectl drain` does.
                    Err(kube::Error::Api(s)) if s.code == 429 => {
                        blocked.push((p.clone(), s.message.clone()));
                    }
                    Err(e) => return Err(kube_err("evict pod")(e)),
                }
            }
            if !blocked.is_empty() {
                let what: Vec<String> = blocked
                    .iter()
                    .map(|(p, msg)| {
                        format!(
                            "the eviction of {} refused by PodDisruptionBudget {} ({msg})",
                            object_name(&p.metadata),
                            covering(p)
                        )
                    })
                    .collect();
                (self.waiting)(node, what.join("; "));
            } else {
                (self.waiting)(node, format!("the pods evicted from {node} to go"));
            }
            tokio::time::sleep(self.pause).await;
        }
        // The evicted pods' owners have brought them back elsewhere: none pending. A pod the
        // scheduler found no room for waits for the replacement instead (as after
        // `kubectl drain` of a full cluster): the budget allowed its eviction.
        (self.waiting)(
            node,
            format!("the pods evicted from {node} to run elsewhere"),
        );
        loop {
            let pods = list_pods(&self.client).await?;
            let pending: Vec<&Pod> = pods
                .iter()
                .filter(|p| {
                    active(p)
                        && p.metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|o| owners.contains(&o.uid))
                        && (phase(p) != Some("Running")
                            || p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_none())
                })
                .collect();
            let unschedulable = pending.iter().filter(|p| unschedulable(p)).count();
            if pending.len() == unschedulable {
                if unschedulable > 0 {
                    (self.say)(format!(
                        "{node}: no node has room for {unschedulable} evicted pod(s); they wait for a node with room (a replacement)"
                    ));
                }
                return Ok(());
            }
            tokio::time::sleep(self.pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn pdb(v: Value) -> PodDisruptionBudget {
        serde_json::from_value(v).expect("a PDB")
    }

    #[test]
    fn a_budget_that_can_never_allow_is_named_by_its_reason() {
        let max0 = pdb(json!({"metadata": {"name": "a"}, "spec": {"maxUnavailable": 0}}));
        assert_eq!(
            never_allows(&max0, 3).as_deref(),
            Some("maxUnavailable is 0")
        );
        let all = pdb(json!({"metadata": {"name": "b"}, "spec": {"minAvailable": "100%"}}));
        assert!(never_allows(&all, 3).is_some());
        let min3 = pdb(json!({"metadata": {"name": "c"}, "spec": {"minAvailable": 3}}));
        assert!(never_allows(&min3, 3).is_some());
        assert_eq!(never_allows(&min3, 4), None);
        let max1 = pdb(json!({"metadata": {"name": "d"}, "spec": {"maxUnavailable": "25%"}}));
        assert_eq!(never_allows(&max1, 2), None, "25% of 2 rounds up to 1");
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]}))
        .expect("selector");
        let l = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(matches_selector(&sel, &l(&[("app", "web"), ("tier", "a")])));
        assert!(!matches_selector(
            &sel,
            &l(&[("app", "web"), ("tier", "c")])
        ));
        assert!(!matches_selector(
            &sel,
            &l(&[("app", "web"), ("tier", "a"), ("canary", "1")])
        ));
        assert!(!matches_selector(&sel, &l(&[("tier", "a")])));
    }
}
