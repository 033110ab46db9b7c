//! `eksnet verify`: checks that custom networking took effect in each cluster — every pod that
//! is not on the host network has an IP from a pod subnet, every node has an ENIConfig to
//! pick (by its label in label mode, by its annotation in annotation mode) and is Ready, and no
//! pod waits for an IP.
//!
//! On an EKS Auto Mode cluster a node's NodeClass (its `eks.amazonaws.com/nodeclass` label)
//! decides where its pods go: the pods of a NodeClass with pod subnets
//! (`podSubnetSelectorTerms`) must have an IP inside those subnets, as EC2 describes them,
//! and no node needs an ENIConfig (Auto Mode reads none; EKS user guide,
//! `automode/auto-networking.adoc`).
//!
//! The last two are what a node that joined without its ENIConfig looks like from inside: the
//! VPC CNI (1.13 and later) fails to start on it, so the kubelet reports the node NotReady with
//! "cni plugin not initialized" and the pods placed there never get an address
//! (amazon-vpc-cni-k8s #2354, #2683).

use crate::cloud::aws::AwsClients;
use crate::cloud::kube::KubeConnector;
use crate::resources::auto_mode_node_class::{node_class_resource, NODECLASS_LABEL};
use crate::resources::eni_config::{api_resource, NODE_ANNOTATION};
use crate::resources::ResourceConfig;
use crate::resources::ResourceError;
use crate::spec::Spec;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub cluster: String,
    /// False when the cluster does not exist (nothing could be checked).
    pub reachable: bool,
    pub pods_checked: usize,
    pub pods_outside: Vec<String>,
    /// Pods that are not on the host network and have no IP (yet): not scheduled, or on a
    /// node whose CNI gives them none.
    pub pods_without_ip: Vec<String>,
    pub nodes_checked: usize,
    pub nodes_without_eni_config: Vec<String>,
    /// Nodes whose `Ready` condition is not `True`, with the kubelet's message.
    pub nodes_not_ready: Vec<String>,
}

impl ClusterReport {
    pub fn ok(&self) -> bool {
        self.reachable
            && self.pods_outside.is_empty()
            && self.pods_without_ip.is_empty()
            && self.nodes_without_eni_config.is_empty()
            && self.nodes_not_ready.is_empty()
    }
}

/// How many things a report finds wrong (a cluster that does not exist counts as one).
pub fn problems(r: &ClusterReport) -> usize {
    if !r.reachable {
        return 1;
    }
    r.pods_outside.len()
        + r.pods_without_ip.len()
        + r.nodes_without_eni_config.len()
        + r.nodes_not_ready.len()
}

/// Why a node is not Ready, from its `Ready` condition; `None` when it is Ready.
fn not_ready(node: &Node) -> Option<String> {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    let Some(ready) = conditions.and_then(|c| c.iter().find(|c| c.type_ == "Ready")) else {
        return Some("no Ready condition reported yet".into());
    };
    if ready.status == "True" {
        return None;
    }
    let mut why = format!("Ready={}", ready.status);
    if let Some(reason) = ready.reason.as_deref().filter(|r| !r.is_empty()) {
        why.push_str(&format!(" ({reason})"));
    }
    if let Some(message) = ready.message.as_deref().filter(|m| !m.is_empty()) {
        why.push_str(&format!(": {message}"));
    }
    Some(why)
}

fn kube_err(op: &'static str) -> impl Fn(kube::Error) -> ResourceError {
    move |e| crate::cloud::kube::error(op, e).into()
}

/// Whether the spec declares a cluster to verify.
pub fn has_clusters(spec: &Spec) -> bool {
    spec.resources
        .values()
        .any(|r| matches!(r.config, ResourceConfig::Cluster(_)))
}

/// The Node label of EKS Auto Mode's nodes (`compute-type=auto`; EKS user guide,
/// `automode/create-node-pool.adoc`).
const COMPUTE_TYPE_LABEL: &str = "eks.amazonaws.com/compute-type";

pub async fn verify(
    spec: &Spec,
    aws: &AwsClients,
    kube: &KubeConnector,
) -> Result<Vec<ClusterReport>, ResourceError> {
    let pod_subnets: Vec<Ipv4Net> = super::existing::pod_cidrs(spec);
    let mut reports = Vec::new();
    for r in spec.resources.values() {
        let ResourceConfig::Cluster(c) = &r.config else {
            continue;
        };
        let cluster = c.name.clone();
        // The cluster's CNI settings (`aws_node` or the `vpc-cni` add-on) decide how nodes
        // select their ENIConfig.
        let selection = super::existing::selection(spec, &spec.resolved_name(&cluster));
        let mut report = ClusterReport {
            cluster: cluster.clone(),
            reachable: false,
            pods_checked: 0,
            pods_outside: vec![],
            pods_without_ip: vec![],
            nodes_checked: 0,
            nodes_without_eni_config: vec![],
            nodes_not_ready: vec![],
        };
        let Some(client) = kube.client(aws, &cluster).await? else {
            reports.push(report);
            continue;
        };
        report.reachable = true;
        let auto_mode = c.auto_mode;
        let node_list = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(kube_err("list nodes"))?
            .items;
        // Auto Mode: the pod subnets' blocks of each NodeClass that has some, and each
        // Auto Mode node's NodeClass.
        let (class_cidrs, node_classes) = if auto_mode {
            (
                node_class_pod_cidrs(aws, &client).await?,
                node_classes(&node_list),
            )
        } else {
            (BTreeMap::new(), BTreeMap::new())
        };
        let pods: Api<Pod> = Api::all(client.clone());
        for pod in pods
            .list(&ListParams::default())
            .await
            .map_err(kube_err("list pods"))?
            .items
        {
            let host = pod
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false);
            if host {
                continue;
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            // A pod that ran to its end holds no address any more.
            if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                continue;
            }
            let Some(ip) = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty())
            else {
                // Being deleted: its IP is going away, not missing.
                if pod.metadata.deletion_timestamp.is_none() {
                    report.pods_without_ip.push(match node {
                        Some(node) => format!("{ns}/{name} on {node} has no IP"),
                        None => format!("{ns}/{name} is not scheduled on any node"),
                    });
                }
                continue;
            };
            report.pods_checked += 1;
            let class = node
                .as_ref()
                .and_then(|n| node_classes.get(n))
                .and_then(|class| Some((class, class_cidrs.get(class)?)));
            let (blocks, which) = match class {
                Some((class, blocks)) => (
                    blocks.as_slice(),
                    format!("NodeClass `{class}`'s pod subnets"),
                ),
                None => (pod_subnets.as_slice(), "the pod subnets".to_string()),
            };
            if !inside(&ip, blocks) {
                let on = node.map(|n| format!(" on {n}")).unwrap_or_default();
                report
                    .pods_outside
                    .push(format!("{ns}/{name}{on} has IP {ip}, outside {which}"));
            }
        }
        // EKS Auto Mode reads no ENIConfig (its NodeClass gives pods their subnets) and has no
        // ENIConfig resource: its nodes are checked for readiness only.
        let eni_configs: BTreeSet<String> = if auto_mode {
            BTreeSet::new()
        } else {
            Api::<DynamicObject>::all_with(client.clone(), &api_resource())
                .list(&ListParams::default())
                .await
                .map_err(kube_err("list eniconfigs"))?
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect()
        };
        let annotation_mode = selection.annotation;
        let label = selection.label;
        for node in node_list {
            report.nodes_checked += 1;
            let name = node.metadata.name.clone().unwrap_or_default();
            if let Some(why) = not_ready(&node) {
                report.nodes_not_ready.push(format!("{name}: {why}"));
            }
            if auto_mode {
                continue;
            }
            let (how, wanted) = if annotation_mode {
                (
                    "annotation",
                    node.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(NODE_ANNOTATION))
                        .cloned(),
                )
            } else {
                (
                    "label",
                    node.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(&label))
                        .cloned(),
                )
            };
            match wanted {
                Some(w) if eni_configs.contains(&w) => {}
                Some(w) => report.nodes_without_eni_config.push(format!(
                    "{name}: its {how} names ENIConfig `{w}`, which does not exist"
                )),
                None => report.nodes_without_eni_config.push(format!(
                    "{name}: no {} to select an ENIConfig",
                    if annotation_mode {
                        NODE_ANNOTATION
                    } else {
                        label.as_str()
                    }
                )),
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Whether an address lies in one of the blocks.
fn inside(ip: &str, blocks: &[Ipv4Net]) -> bool {
    ip.parse::<Ipv4Addr>()
        .is_ok_and(|a| blocks.iter().any(|n| n.contains(&a)))
}

/// Each Auto Mode node's NodeClass, by node name (other nodes left out).
fn node_classes(nodes: &[Node]) -> BTreeMap<String, String> {
    nodes
        .iter()
        .filter_map(|n| {
            let labels = n.metadata.labels.as_ref()?;
            if labels.get(COMPUTE_TYPE_LABEL).map(String::as_str) != Some("auto") {
                return None;
            }
            // Auto Mode's built-in pools use EKS's NodeClass `default`.
            let class = labels
                .get(NODECLASS_LABEL)
                .cloned()
                .unwrap_or_else(|| "default".into());
            Some((n.metadata.name.clone()?, class))
        })
        .collect()
}

/// The blocks of each NodeClass's pod subnets (`podSubnetSelectorTerms` by id), as EC2
/// describes them; NodeClasses without pod subnets left out. A subnet EC2 does not know
/// adds no block, so pods placed there count as outside.
async fn node_class_pod_cidrs(
    aws: &AwsClients,
    client: &kube::Client,
) -> Result<BTreeMap<String, Vec<Ipv4Net>>, ResourceError> {
    let classes = Api::<DynamicObject>::all_with(client.clone(), &node_class_resource())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list nodeclasses"))?
        .items;
    let mut by_class = BTreeMap::new();
    for class in classes {
        let Some(name) = class.metadata.name.clone() else {
            continue;
        };
        let ids: Vec<String> = class
            .data
            .pointer("/spec/podSubnetSelectorTerms")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("id").and_then(serde_json::Value::as_str))
            .map(String::from)
            .collect();
        if ids.is_empty() {
            continue;
        }
        // A filter, not SubnetIds: one unknown id would fail the whole call.
        let subnets = aws
            .ec2
            .describe_subnets()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("subnet-id")
                    .set_values(Some(ids))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| crate::resources::aws_error("DescribeSubnets", e))?;
        let blocks = subnets
            .subnets()
            .iter()
            .filter_map(|s| s.cidr_block()?.parse().ok())
            .collect();
        by_class.insert(name, blocks);
    }
    Ok(by_class)
}

/// Human rendering for stdout.
pub fn render(reports: &[ClusterReport]) -> String {
    let mut out = String::new();
    for r in reports {
        out.push_str(&format!("cluster {}\n", r.cluster));
        if !r.reachable {
            out.push_str("  not found: nothing to verify\n");
            continue;
        }
        out.push_str(&format!(
            "  pods (not hostNetwork): {} checked, {} outside the pod subnets\n",
            r.pods_checked,
            r.pods_outside.len()
        ));
        for p in &r.pods_outside {
            out.push_str(&format!("    ✗ {p}\n"));
        }
        if !r.pods_without_ip.is_empty() {
            out.push_str(&format!(
                "  pods waiting for an IP: {}\n",
                r.pods_without_ip.len()
            ));
        }
        for p in &r.pods_without_ip {
            out.push_str(&format!("    ✗ {p}\n"));
        }
        out.push_str(&format!(
            "  nodes: {} checked, {} without an ENIConfig\n",
            r.nodes_checked,
            r.nodes_without_eni_config.len()
        ));
        for n in &r.nodes_without_eni_config {
            out.push_str(&format!("    ✗ {n}\n"));
        }
        if !r.nodes_not_ready.is_empty() {
            out.push_str(&format!("  nodes not Ready: {}\n", r.nodes_not_ready.len()));
        }
        for n in &r.nodes_not_ready {
            out.push_str(&format!("    ✗ {n}\n"));
        }
        out.push_str(if r.ok() {
            "  OK\n"
        } else {
            "  PROBLEMS FOUND\n"
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(status: serde_json::Value) -> Node {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "n"}, "status": status}))
            .expect("a Node")
    }

    #[test]
    fn a_node_is_ready_only_with_a_true_ready_condition() {
        let ready = node(serde_json::json!({"conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": "True"}]}));
        assert_eq!(not_ready(&ready), None);
        let cni = node(
            serde_json::json!({"conditions": [{"type": "Ready", "status": "False",
            "reason": "KubeletNotReady", "message": "cni plugin not initialized"}]}),
        );
        assert_eq!(
            not_ready(&cni).as_deref(),
            Some("Ready=False (KubeletNotReady): cni plugin not initialized")
        );
        let unknown =
            node(serde_json::json!({"conditions": [{"type": "Ready", "status": "Unknown"}]}));
        assert_eq!(not_ready(&unknown).as_deref(), Some("Ready=Unknown"));
        assert_eq!(
            not_ready(&node(serde_json::json!({}))).as_deref(),
            Some("no Ready condition reported yet")
        );
    }

    #[test]
    fn auto_mode_nodes_are_judged_by_their_node_class_pod_subnets() {
        let n = |name: &str, labels: serde_json::Value| -> Node {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": name, "labels": labels}}),
            )
            .expect("a Node")
        };
        let nodes = [
            n(
                "a",
                serde_json::json!({COMPUTE_TYPE_LABEL: "auto", NODECLASS_LABEL: "pods"}),
            ),
            n("b", serde_json::json!({COMPUTE_TYPE_LABEL: "auto"})),
            n("c", serde_json::json!({NODECLASS_LABEL: "pods"})),
        ];
        let classes = node_classes(&nodes);
        assert_eq!(classes.get("a").map(String::as_str), Some("pods"));
        assert_eq!(classes.get("b").map(String::as_str), Some("default"));
        assert!(!classes.contains_key("c"), "not an Auto Mode node");
        let blocks: Vec<Ipv4Net> = vec!["100.64.0.0/19".parse().expect("a block")];
        assert!(inside("100.64.0.20", &blocks));
        assert!(!inside("100.64.32.20", &blocks));
        assert!(!inside("not an address", &blocks));
    }
}
