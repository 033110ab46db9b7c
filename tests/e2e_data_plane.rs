//! End to end in the sandbox with its data plane on (`scripts/sandbox up`): moto behind the
//! AWS fault proxy, whose data plane launches the nodegroups' instances, joins them to the fake
//! Kubernetes API server and runs the VPC CNI's rules on each node, and the real `eksnet`
//! binary. What is checked is the effect eksnet exists for, not the requests it sends: nodes
//! that are Ready, pods whose IPs come from the pod subnets and are IPs of ENIs moto shows,
//! the wrong order breaking exactly as it does on EKS, `max_pods` reaching the kubelet, a
//! teardown that meets the ENIs the CNI leaves behind, and security groups for pods giving
//! the pods a SecurityGroupPolicy selects branch interfaces with its groups.

mod common;

use common::sandbox::{Sandbox, SandboxOptions};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPEC: &str = "examples/custom-networking.toml";
const ADDON_SPEC: &str = "examples/custom-networking-addon.toml";
/// How long the data plane may take to settle after an apply (passes every 200 ms; moto is
/// slow on a loaded 2-core machine).
const SETTLE: Duration = Duration::from_secs(90);

struct World {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
}

fn world() -> World {
    let sandbox = Sandbox::up(SandboxOptions::default());
    let w = World {
        sandbox,
        dir: example_dir(),
    };
    // The CNI's leaked ENIs are cleaned a few seconds after their instance is gone, so that a
    // destroy converges quickly; the teardown test sets its own window.
    w.proxy_config(json!({"eni_cleanup_ms": 3000}));
    w
}

fn addr(url: &str) -> &str {
    url.trim_start_matches("http://")
}

impl World {
    fn eksnet(&self) -> Command {
        let mut c = eksnet(&self.sandbox.endpoint, self.dir.path());
        c.env("EKSNET_KUBECONFIG", &self.sandbox.kubeconfig);
        if let Some(ctx) = self.sandbox.env.get("EKSNET_KUBE_CONTEXT") {
            c.env("EKSNET_KUBE_CONTEXT", ctx);
        }
        c.env("EKSNET_POLL_MAX_MS", "200");
        c
    }

    fn kube(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (status, text) = http(addr(&self.sandbox.kube_url), method, path, body);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn list(&self, path: &str) -> Vec<Value> {
        let (status, v) = self.kube("GET", path, "");
        assert_eq!(status, 200, "GET {path}: {v}");
        v["items"].as_array().cloned().unwrap_or_default()
    }

    fn proxy_config(&self, patch: Value) {
        let (status, body) = http(
            addr(&self.sandbox.proxy_url),
            "POST",
            "/__proxy/config",
            &patch.to_string(),
        );
        assert_eq!(status, 200, "proxy config {patch}: {body}");
    }

    fn write_spec(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).expect("write spec");
    }

    /// Deletes the aws-node DaemonSet the fake API server is seeded with: on a cluster made
    /// without the self-managed add-ons, the `vpc-cni` add-on makes it.
    fn without_seeded_aws_node(&self) {
        let (status, body) = self.kube(
            "DELETE",
            "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node",
            "",
        );
        assert_eq!(status, 200, "{body}");
    }

    fn spec_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).expect("read spec")
    }
}

fn ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn name(o: &Value) -> String {
    o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn host_network(pod: &Value) -> bool {
    pod["spec"]["hostNetwork"] == true
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (Ok(ip), Some((base, len))) = (
        ip.parse::<Ipv4Addr>(),
        cidr.split_once('/')
            .and_then(|(b, l)| Some((b.parse::<Ipv4Addr>().ok()?, l.parse::<u32>().ok()?))),
    ) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(base) & mask
}

/// Waits until `check` returns `Some`, or fails with what `check` last saw.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if start.elapsed() > SETTLE => {
                panic!("{what}: still not so after {SETTLE:?}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The instance id of a Node, from its provider ID (`aws:///ZONE/i-…`).
fn instance_of(node: &Value) -> String {
    node["spec"]["providerID"]
        .as_str()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or_default()
        .to_string()
}

/// Every pod not on the host network is Running with an IP in `pod_cidrs`, and that IP is a
/// secondary IP of a CNI ENI (device index ≥ 1, description `aws-K8S-<instance>`) attached to
/// its node's instance, in a subnet inside the pod CIDRs; host-network pods have their node's
/// IP. Returns how many pods were checked.
async fn pods_sit_on_cni_enis(w: &World, pod_cidrs: &[&str]) -> usize {
    let aws = sdk(&w.sandbox.endpoint).await;
    let nodes: BTreeMap<String, Value> = w
        .list("/api/v1/nodes")
        .into_iter()
        .map(|n| (name(&n), n))
        .collect();
    let mut checked = 0;
    for pod in w.list("/api/v1/pods") {
        let pod_name = format!("{}/{}", pod["metadata"]["namespace"], name(&pod));
        let ip = pod["status"]["podIP"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        let node = nodes
            .get(node_name)
            .unwrap_or_else(|| panic!("{pod_name} runs on {node_name:?}, not a node"));
        assert_eq!(pod["status"]["phase"], "Running", "{pod_name}: {pod}");
        let node_ip = node["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
            .and_then(|a| a["address"].as_str())
            .unwrap_or_default();
        if host_network(&pod) {
            assert_eq!(ip, node_ip, "{pod_name} is on the host network");
            continue;
        }
        checked += 1;
        assert!(
            pod_cidrs.iter().any(|c| in_cidr(&ip, c)),
            "{pod_name} has IP {ip}, outside {pod_cidrs:?}"
        );
        let instance = instance_of(node);
        let enis = aws
            .ec2
            .describe_network_interfaces()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("attachment.instance-id")
                    .values(&instance)
                    .build(),
            )
            .send()
            .await
            .expect("DescribeNetworkInterfaces");
        let holder = enis
            .network_interfaces()
            .iter()
            .find(|e| {
                e.private_ip_addresses()
                    .iter()
                    .any(|p| p.private_ip_address() == Some(ip.as_str()))
            })
            .unwrap_or_else(|| panic!("{pod_name}'s IP {ip} is on no ENI of {instance}"));
        let device = holder
            .attachment()
            .and_then(|a| a.device_index())
            .unwrap_or(-1);
        assert!(device >= 1, "{pod_name}'s IP {ip} is on the primary ENI");
        assert_eq!(
            holder.description(),
            Some(format!("aws-K8S-{instance}").as_str()),
            "{pod_name}'s ENI is the CNI's"
        );
        let subnet = holder.subnet_id().unwrap_or_default();
        let cidr = subnet_cidrs(&aws, vec![subnet.to_string()])
            .await
            .pop()
            .unwrap_or_default();
        assert!(
            pod_cidrs
                .iter()
                .any(|c| in_cidr(cidr.split('/').next().unwrap_or_default(), c)),
            "{pod_name}'s ENI is in {subnet} ({cidr}), not a pod subnet"
        );
    }
    checked
}

/// The ready nodes, once there are `n` and every pod not on the host network has an IP.
fn settled(w: &World, n: usize) -> Vec<Value> {
    eventually("nodes Ready and pods with IPs", || {
        let nodes = w.list("/api/v1/nodes");
        let ready_nodes: Vec<Value> = nodes.iter().filter(|n| ready(n)).cloned().collect();
        if ready_nodes.len() != n || nodes.len() != n {
            return Err(format!(
                "{} nodes, {} Ready",
                nodes.len(),
                ready_nodes.len()
            ));
        }
        let waiting: Vec<String> = w
            .list("/api/v1/pods")
            .iter()
            .filter(|p| p["status"]["podIP"].as_str().unwrap_or_default().is_empty())
            .map(name)
            .collect();
        if waiting.is_empty() {
            Ok(ready_nodes)
        } else {
            Err(format!("pods without IP: {waiting:?}"))
        }
    })
}

async fn instances_running(w: &World) -> usize {
    running_instance_ids(&sdk(&w.sandbox.endpoint).await)
        .await
        .len()
}

/// The tutorial, applied: two nodes join and are Ready, CoreDNS runs on IPs of the CNI's ENIs
/// in the pod subnets, the pod subnets' free addresses fell, `verify` exits 0, and `destroy`
/// converges through the ENIs the CNI leaves behind.
#[tokio::test]
async fn tutorial_nodes_join_and_pods_get_ips_from_the_pod_subnets() {
    let w = world();
    run_ok(w.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    let nodes = settled(&w, 2);
    let zones: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str())
        .collect();
    assert_eq!(zones, BTreeSet::from(["us-west-2a", "us-west-2b"]));
    let checked = pods_sit_on_cni_enis(&w, &["192.168.1.0/24"]).await;
    assert_eq!(checked, 2, "the two CoreDNS replicas");
    // The pod subnets gave the CNI's ENIs their addresses: fewer than a /27's 27 are free.
    let aws = sdk(&w.sandbox.endpoint).await;
    let subnets = subnets_by_cidr(&aws, &["192.168.1.0/27", "192.168.1.32/27"]).await;
    assert_eq!(subnets.len(), 2);
    for s in &subnets {
        let free = s.available_ip_address_count().unwrap_or(27);
        assert!(free < 27 - 1, "{:?}: {free} free", s.cidr_block());
    }
    verified_then_destroyed(&w, SPEC, 2).await;
    assert!(w.list("/api/v1/nodes").is_empty(), "and so are their Nodes");
}

/// `verify` exits 0 having checked `pods` pods, none outside the pod subnets; then `destroy`
/// converges and every node is gone.
async fn verified_then_destroyed(w: &World, spec: &str, pods: usize) {
    let verify = run_ok(w.eksnet().args(["verify", spec]), 0);
    assert!(
        verify
            .stdout
            .contains(&format!("{pods} checked, 0 outside the pod subnets")),
        "{}",
        verify.stdout
    );
    run_ok(w.eksnet().args(["destroy", spec, "--auto-approve"]), 0);
    assert_eq!(instances_running(w).await, 0, "the nodes are gone");
}

/// The add-on example applied and settled, on a cluster made without the self-managed
/// add-ons: the fake's seeded aws-node DaemonSet is removed first, the add-on makes it.
fn addon_example_applied(w: &World) {
    w.without_seeded_aws_node();
    run_ok(w.eksnet().args(["apply", ADDON_SPEC, "--auto-approve"]), 0);
    settled(w, 2);
}

/// The add-on path: the cluster has no aws-node until the `vpc-cni` add-on makes it, so the
/// nodes' CNI starts with the add-on's settings.
#[tokio::test]
async fn addon_example_nodes_join_with_the_addons_settings() {
    let w = world();
    addon_example_applied(&w);
    let checked = pods_sit_on_cni_enis(&w, &["192.168.1.0/24"]).await;
    assert_eq!(checked, 2, "the two CoreDNS replicas");
    run_ok(w.eksnet().args(["verify", ADDON_SPEC]), 0);
    run_ok(
        w.eksnet().args(["destroy", ADDON_SPEC, "--auto-approve"]),
        0,
    );
}

/// Self-managed nodes (`examples/self-managed-nodes.toml`): the Auto Scaling group is made
/// after the ENIConfigs and the access entry; its nodes join with the max pods their ENIs
/// hold under custom networking; a Deployment's pods run on them with addresses of the pod
/// subnets (their CIDRs as moto has them) and `verify` passes; the group's replacement keeps
/// the Deployment up (its budget's minimum Ready at every look, each old pod evicted before
/// Auto Scaling is told to end the old instances); destroy leaves no group, template or
/// instance profile.
#[tokio::test]
async fn self_managed_nodes_join_after_the_eniconfigs() {
    const SELF_MANAGED_SPEC: &str = "examples/self-managed-nodes.toml";
    let w = world();
    w.without_seeded_aws_node();
    run_ok(
        w.eksnet()
            .args(["apply", SELF_MANAGED_SPEC, "--auto-approve"]),
        0,
    );
    let nodes = settled(&w, 2);
    for n in &nodes {
        // m5.large under custom networking: 2 pod ENIs × 9 addresses + 2 host-network pods.
        assert_eq!(n["status"]["capacity"]["pods"], "20", "{n}");
    }
    let proxy = addr(&w.sandbox.proxy_url).to_string();
    let stats = proxy_stats(&proxy);
    let start = |op: &str| {
        stats
            .iter()
            .find(|r| r["op"] == op)
            .and_then(|r| r["start_unix_nanos"].as_u64())
            .unwrap_or_else(|| panic!("no {op} request"))
    };
    let group = start("CreateAutoScalingGroup");
    assert!(start("CreateAccessEntry") < group);
    let (_, log) = w.kube("GET", "/__fake/requests", "");
    let eniconfigs: Vec<u64> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["method"] != "GET" && r["path"].as_str().is_some_and(|p| p.contains("eniconfigs"))
        })
        .filter_map(|r| r["unix_nanos"].as_u64())
        .collect();
    assert!(!eniconfigs.is_empty(), "the ENIConfigs were written");
    assert!(
        eniconfigs.iter().all(|t| *t < group),
        "ENIConfigs before the group"
    );
    let aws = sdk(&w.sandbox.endpoint).await;
    // A Deployment on the self-managed nodes, with a budget that lets one of its four pods
    // go at a time.
    deployment(&w, "web", 4);
    let (status, body) = w.kube(
        "POST",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}}})
        .to_string(),
    );
    assert_eq!(status, 201, "create pdb: {body}");
    eventually("the four web pods Ready", || {
        match ready_web(&w.list("/api/v1/pods"), &w.list("/api/v1/nodes")) {
            4 => Ok(()),
            n => Err(format!("{n} of 4")),
        }
    });
    let pod_cidrs = eniconfig_subnet_cidrs(&w, &aws).await;
    assert_eq!(pod_cidrs.len(), 2, "one pod subnet per AZ: {pod_cidrs:?}");
    let cidrs: Vec<&str> = pod_cidrs.iter().map(String::as_str).collect();
    let checked = pods_sit_on_cni_enis(&w, &cidrs).await;
    assert_eq!(checked, 6, "the two CoreDNS replicas and the four web pods");
    let verify = run_ok(w.eksnet().args(["verify", SELF_MANAGED_SPEC]), 0);
    assert!(
        verify
            .stdout
            .contains("6 checked, 0 outside the pod subnets"),
        "{}",
        verify.stdout
    );
    // The 20 is the user data's (the AMI's own default for m5.large would be 3 × 9 + 2 = 29).
    assert_eq!(user_data_max_pods(&aws).await, [20, 20]);

    // max_pods 20 → 17 replaces the group create-before-destroy: the new nodes take the new
    // user data, and the old group and its launch template go.
    let spec = w.spec_text(SELF_MANAGED_SPEC);
    assert!(spec.contains("max_pods = 20\n"));
    w.write_spec(
        SELF_MANAGED_SPEC,
        &spec.replace("max_pods = 20\n", "max_pods = 17\n"),
    );
    let old_web: BTreeSet<String> = w
        .list("/api/v1/namespaces/default/pods")
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .map(name)
        .collect();
    let old_nodes: BTreeSet<String> = w.list("/api/v1/nodes").iter().map(name).collect();
    let requests_before = proxy_stats(&proxy).len();
    // The replacement, watched: the web pods Ready on Ready Nodes at every look.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let kube = w.sandbox.kube_url.clone();
        std::thread::spawn(move || {
            let list = |path: &str| -> Vec<Value> {
                let (_, text) = http(addr(&kube), "GET", path, "");
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            };
            let (mut looks, mut fewest) = (0, usize::MAX);
            while !stop.load(Ordering::Relaxed) {
                let nodes = list("/api/v1/nodes");
                fewest = fewest.min(ready_web(&list("/api/v1/pods"), &nodes));
                looks += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (looks, fewest)
        })
    };
    let applied = run_ok(
        w.eksnet()
            .args(["apply", SELF_MANAGED_SPEC, "--auto-approve"]),
        0,
    );
    stop.store(true, Ordering::Relaxed);
    let (looks, fewest) = watcher.join().expect("watcher");
    assert!(looks > 10, "the watcher looked {looks} times");
    assert!(
        fewest >= 3,
        "{fewest} web pods Ready at the low point, under the budget's 3\n{}",
        applied.stderr
    );
    // Each old web pod was evicted (201) before Auto Scaling was told to end the old
    // instances (the old group's desired capacity 0).
    let scale_down = proxy_stats(&proxy)[requests_before..]
        .iter()
        .find(|r| r["op"] == "UpdateAutoScalingGroup")
        .and_then(|r| r["start_unix_nanos"].as_u64())
        .expect("the old group scaled to 0");
    let (_, log) = w.kube("GET", "/__fake/requests", "");
    let evicted: BTreeMap<String, u64> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["method"] == "POST" && r["code"] == 201)
        .filter_map(|r| {
            let path = r["path"].as_str()?;
            let pod = path
                .strip_prefix("/api/v1/namespaces/default/pods/")?
                .strip_suffix("/eviction")?;
            Some((pod.to_string(), r["unix_nanos"].as_u64()?))
        })
        .collect();
    for pod in &old_web {
        let at = evicted
            .get(pod)
            .unwrap_or_else(|| panic!("{pod} was not evicted: {evicted:?}"));
        assert!(*at < scale_down, "{pod} evicted after the scale-down");
    }
    for node in &old_nodes {
        assert!(
            applied.stderr.contains(&format!("{node} drained")),
            "the drain's progress on stderr: {}",
            applied.stderr
        );
    }
    // The apply returns once the new group's instances are InService (EC2's view) and the old
    // group is deleted; the old instances' Nodes leave Kubernetes only when the node lifecycle
    // controller notices, and the group may still replace an instance that failed to start, so
    // "2 Ready nodes" alone can be the old ones. Wait for the Nodes of the running instances.
    let start = Instant::now();
    let nodes = loop {
        let running = running_instance_ids(&aws).await;
        let nodes: Vec<Value> = w.list("/api/v1/nodes");
        let ids: BTreeSet<String> = nodes
            .iter()
            .filter(|n| ready(n))
            .filter_map(|n| n["spec"]["providerID"].as_str())
            .filter_map(|p| p.rsplit('/').next().map(str::to_string))
            .collect();
        if running.len() == 2 && nodes.len() == 2 && ids == running {
            break nodes;
        }
        assert!(
            start.elapsed() < SETTLE,
            "Ready nodes of {ids:?}, {} nodes, running {running:?}",
            nodes.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(user_data_max_pods(&aws).await, [17, 17]);
    for n in &nodes {
        assert_eq!(n["status"]["capacity"]["pods"], "17", "{n}");
    }
    let groups: Vec<String> = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .expect("DescribeAutoScalingGroups")
        .auto_scaling_groups()
        .iter()
        .filter_map(|g| g.auto_scaling_group_name().map(str::to_string))
        .collect();
    assert_eq!(groups, ["my-self-managed-nodes-cbd"]);
    let templates: Vec<String> = aws
        .ec2
        .describe_launch_templates()
        .send()
        .await
        .expect("DescribeLaunchTemplates")
        .launch_templates()
        .iter()
        .filter_map(|t| t.launch_template_name().map(str::to_string))
        .collect();
    assert_eq!(templates.len(), 1, "{templates:?}");
    assert!(
        templates[0].ends_with("-my-self-managed-nodes-cbd"),
        "{templates:?}"
    );

    // The CoreDNS pods moved to the new nodes get their address a kubelet pass after they
    // are bound: wait for it before verify reads them.
    settled(&w, 2);
    assert_eq!(pods_sit_on_cni_enis(&w, &cidrs).await, 6);
    verified_then_destroyed(&w, SELF_MANAGED_SPEC, 6).await;
    let groups = aws.autoscaling.describe_auto_scaling_groups().send().await;
    assert_eq!(groups.map(|g| g.auto_scaling_groups().len()).ok(), Some(0));
    let profiles = aws.iam.list_instance_profiles().send().await;
    assert_eq!(profiles.map(|p| p.instance_profiles().len()).ok(), Some(0));
    let templates = aws.ec2.describe_launch_templates().send().await;
    assert_eq!(templates.map(|t| t.launch_templates().len()).ok(), Some(0));
}

/// The web pods Ready, not being deleted, on a Node that is there and Ready.
fn ready_web(pods: &[Value], nodes: &[Value]) -> usize {
    let ready_nodes: BTreeSet<String> = nodes.iter().filter(|n| ready(n)).map(name).collect();
    pods.iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| ready_nodes.contains(n))
        })
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count()
}

/// The CIDRs of the subnets the cluster's ENIConfigs name, as moto has them.
async fn eniconfig_subnet_cidrs(w: &World, aws: &eksnet::cloud::aws::AwsClients) -> Vec<String> {
    let subnets: Vec<String> = w
        .list("/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs")
        .iter()
        .filter_map(|e| e["spec"]["subnet"].as_str().map(str::to_string))
        .collect();
    assert!(!subnets.is_empty(), "no ENIConfig names a subnet");
    subnet_cidrs(aws, subnets).await
}

/// The CIDR blocks of the subnets, as moto has them, sorted.
async fn subnet_cidrs(aws: &eksnet::cloud::aws::AwsClients, ids: Vec<String>) -> Vec<String> {
    let mut cidrs: Vec<String> = aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(ids))
        .send()
        .await
        .expect("DescribeSubnets")
        .subnets()
        .iter()
        .filter_map(|s| s.cidr_block().map(str::to_string))
        .collect();
    cidrs.sort();
    cidrs
}

/// The ids of the running instances.
async fn running_instance_ids(aws: &eksnet::cloud::aws::AwsClients) -> BTreeSet<String> {
    aws.ec2
        .describe_instances()
        .send()
        .await
        .expect("DescribeInstances")
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            i.state()
                .and_then(|s| s.name())
                .is_some_and(|s| s.as_str() == "running")
        })
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

/// The `maxPods` of each running instance's user data (DescribeInstanceAttribute), sorted;
/// a NodeConfig line `maxPods: N` (user data made by `nodeadm` conventions).
async fn user_data_max_pods(aws: &eksnet::cloud::aws::AwsClients) -> Vec<u32> {
    use base64::Engine;
    let mut found = Vec::new();
    for id in running_instance_ids(aws).await {
        let attr = aws
            .ec2
            .describe_instance_attribute()
            .instance_id(&id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .expect("DescribeInstanceAttribute");
        let encoded = attr.user_data().and_then(|u| u.value()).unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let n = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("maxPods:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no maxPods in {id}'s user data: {text}"));
        found.push(n);
    }
    found.sort_unstable();
    found
}

/// Removes whole `[KIND.NAME]` blocks from a spec (up to the next block).
fn without_blocks(spec: &str, blocks: &[&str]) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in spec.lines() {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            skipping = blocks.contains(&header);
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The order other tools use: the nodegroup first, custom networking in a second apply. The
/// first nodes keep giving pods IPs from the node subnets, the next plan says so, `verify`
/// names them, and `apply --replace` moves the pods with a Ready node at every moment.
#[tokio::test]
async fn nodes_that_joined_before_custom_networking_are_named_and_replaced() {
    let w = world();
    let full = w.spec_text(SPEC);
    let first = without_blocks(
        &full,
        &["aws_node.main", "eni_config.pod_a", "eni_config.pod_b"],
    );
    // One spec file (so one state), first without the CNI settings and ENIConfigs.
    w.write_spec(SPEC, &first);
    run_ok(w.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    settled(&w, 2);
    // CoreDNS took addresses of the nodes' own subnets (the stack's private subnets).
    let coredns: Vec<Value> = w
        .list("/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-dns")
        .into_iter()
        .collect();
    assert_eq!(coredns.len(), 2);
    for p in &coredns {
        let ip = p["status"]["podIP"].as_str().unwrap_or_default();
        assert!(
            in_cidr(ip, "192.168.0.64/27") || in_cidr(ip, "192.168.0.96/27"),
            "{} has {ip}",
            name(p)
        );
    }
    let old_nodes: BTreeSet<String> = w.list("/api/v1/nodes").iter().map(name).collect();

    // Custom networking on, by the second apply: the plan warns about the running nodes.
    w.write_spec(SPEC, &full);
    let plan = run_ok(w.eksnet().args(["plan", SPEC]), 0);
    assert!(
        plan.stderr.contains("already have nodes")
            && plan.stderr.contains("--replace nodegroup.main"),
        "{}",
        plan.stderr
    );
    run_ok(w.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    let failing = run_ok(w.eksnet().args(["verify", SPEC]), 3);
    let named: Vec<&String> = old_nodes
        .iter()
        .filter(|n| failing.stdout.contains(n.as_str()))
        .collect();
    assert!(
        !named.is_empty(),
        "verify names the old nodes: {}",
        failing.stdout
    );
    assert!(
        failing.stdout.contains("outside the pod subnets"),
        "{}",
        failing.stdout
    );

    // The replacement, watched: at every look there is a Ready node.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let kube = w.sandbox.kube_url.clone();
        std::thread::spawn(move || {
            let mut looks = 0;
            let mut empty = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, text) = http(addr(&kube), "GET", "/api/v1/nodes", "");
                let nodes: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let items = nodes["items"].as_array().cloned().unwrap_or_default();
                looks += 1;
                if status != 200 || !items.iter().any(ready) {
                    empty.push(looks);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (looks, empty)
        })
    };
    run_ok(
        w.eksnet().args([
            "apply",
            SPEC,
            "--auto-approve",
            "--replace",
            "nodegroup.main",
        ]),
        0,
    );
    let verify = run_ok(w.eksnet().args(["verify", SPEC, "--wait", "90s"]), 0);
    stop.store(true, Ordering::Relaxed);
    let (looks, empty) = watcher.join().expect("watcher");
    assert!(looks > 10, "the watcher looked {looks} times");
    assert!(
        empty.is_empty(),
        "no Ready node at looks {empty:?} of {looks}"
    );
    assert!(
        verify.stdout.contains("2 checked, 0 outside"),
        "{}",
        verify.stdout
    );
    let new_nodes: BTreeSet<String> = w.list("/api/v1/nodes").iter().map(name).collect();
    assert!(
        old_nodes.is_disjoint(&new_nodes),
        "{old_nodes:?} → {new_nodes:?}"
    );
    assert_eq!(pods_sit_on_cni_enis(&w, &["192.168.1.0/24"]).await, 2);
}

/// Custom networking on, and the ENIConfig of one AZ removed outside eksnet: the node that
/// comes up there (the Auto Scaling group replacing a terminated instance) is never Ready,
/// and `verify` names it with the kubelet's reason.
#[tokio::test]
async fn a_node_without_its_eniconfig_stays_not_ready_and_verify_names_it() {
    let w = world();
    run_ok(w.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    let nodes = settled(&w, 2);
    let in_b = nodes
        .iter()
        .find(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"] == "us-west-2b")
        .expect("a node in us-west-2b");
    let (status, body) = w.kube(
        "DELETE",
        "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/us-west-2b",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let aws = sdk(&w.sandbox.endpoint).await;
    aws.ec2
        .terminate_instances()
        .instance_ids(instance_of(in_b))
        .send()
        .await
        .expect("TerminateInstances");
    let newcomer = eventually("a new node in us-west-2b", || {
        w.list("/api/v1/nodes")
            .into_iter()
            .find(|n| {
                n["metadata"]["labels"]["topology.kubernetes.io/zone"] == "us-west-2b"
                    && name(n) != name(in_b)
            })
            .map(|n| name(&n))
            .ok_or_else(|| "none yet".to_string())
    });
    // Passes come every 200 ms: a few seconds is many chances to become Ready.
    std::thread::sleep(Duration::from_secs(3));
    let node = w.kube("GET", &format!("/api/v1/nodes/{newcomer}"), "").1;
    assert!(
        !ready(&node),
        "{newcomer} became Ready without its ENIConfig"
    );
    let failing = run_ok(w.eksnet().args(["verify", SPEC]), 3);
    let line = failing
        .stdout
        .lines()
        .find(|l| l.contains(&newcomer) && l.contains("Ready=False"))
        .unwrap_or_else(|| {
            panic!(
                "verify does not name {newcomer} as not Ready: {}",
                failing.stdout
            )
        });
    assert!(line.contains("cni plugin not initialized"), "{line}");
    assert!(
        failing.stdout.contains(&format!(
            "{newcomer}: its label names ENIConfig `us-west-2b`, which does not exist"
        )),
        "{}",
        failing.stdout
    );
}

/// `max_pods` reaches the kubelet: the nodes' allocatable pods; a new value rolls the nodes.
#[tokio::test]
async fn max_pods_reaches_the_nodes_and_a_new_value_rolls_them() {
    let w = world();
    let spec = w.spec_text(SPEC).replace(
        "instance_types = [\"t3.medium\"]",
        "instance_types = [\"t3.medium\"]\nami_type = \"AL2023_x86_64_STANDARD\"\nmax_pods = 10",
    );
    w.write_spec("examples/max.toml", &spec);
    run_ok(
        w.eksnet()
            .args(["apply", "examples/max.toml", "--auto-approve"]),
        0,
    );
    let nodes = settled(&w, 2);
    for n in &nodes {
        assert_eq!(n["status"]["allocatable"]["pods"], "10", "{}", name(n));
        assert_eq!(n["status"]["capacity"]["pods"], "10", "{}", name(n));
    }
    let before: BTreeSet<String> = nodes.iter().map(name).collect();
    w.write_spec(
        "examples/max.toml",
        &spec.replace("max_pods = 10", "max_pods = 8"),
    );
    run_ok(
        w.eksnet()
            .args(["apply", "examples/max.toml", "--auto-approve"]),
        0,
    );
    let after = eventually("the nodes rolled to max pods 8", || {
        let nodes = w.list("/api/v1/nodes");
        let names: BTreeSet<String> = nodes.iter().map(name).collect();
        let all_new = nodes.len() == 2
            && names.is_disjoint(&before)
            && nodes
                .iter()
                .all(|n| ready(n) && n["status"]["allocatable"]["pods"] == "8");
        if all_new {
            Ok(names)
        } else {
            Err(format!(
                "{:?}",
                nodes
                    .iter()
                    .map(|n| (
                        name(n),
                        n["status"]["allocatable"]["pods"].clone(),
                        ready(n)
                    ))
                    .collect::<Vec<_>>()
            ))
        }
    });
    assert_eq!(after.len(), 2);
    run_ok(
        w.eksnet()
            .args(["verify", "examples/max.toml", "--wait", "60s"]),
        0,
    );
}

/// `destroy` right after `apply` meets the ENIs the CNI detached from the terminated nodes:
/// while they are `available`, EC2 refuses to delete their subnets. With a long cleanup window
/// and a short subnet timeout, destroy stops and says what is left and how to remove it;
/// `--delete-available-enis` then converges at once.
#[tokio::test]
async fn destroy_meets_the_cnis_leaked_enis() {
    let w = world();
    w.proxy_config(json!({"eni_cleanup_ms": 600000}));
    let spec = w.spec_text(SPEC).replace(
        "[settings]\nregion = \"us-west-2\"",
        "[settings]\nregion = \"us-west-2\"\ntimeouts = { subnet = 6 }",
    );
    assert!(spec.contains("subnet = 6"));
    w.write_spec("examples/leaky.toml", &spec);
    run_ok(
        w.eksnet()
            .args(["apply", "examples/leaky.toml", "--auto-approve"]),
        0,
    );
    settled(&w, 2);
    let stuck = run_ok(
        w.eksnet()
            .args(["destroy", "examples/leaky.toml", "--auto-approve"]),
        1,
    );
    assert!(
        stuck.stderr.contains("still has dependencies")
            && stuck.stderr.contains("available, aws-K8S-i-")
            && stuck.stderr.contains("--delete-available-enis"),
        "{}",
        stuck.stderr
    );
    run_ok(
        w.eksnet().args([
            "destroy",
            "examples/leaky.toml",
            "--auto-approve",
            "--delete-available-enis",
        ]),
        0,
    );
    let left = run_ok(
        w.eksnet()
            .args(["state", "list", "--state", "state/leaky.db"]),
        0,
    );
    assert!(left.stdout.trim().is_empty(), "{}", left.stdout);
}

/// The add-on example with security groups for pods: `pod_security_groups` on the `vpc-cni`
/// add-on, the controller's policy on the cluster role, m5.large nodes, and a
/// SecurityGroupPolicy for `app=web` with the stack's security group.
fn security_groups_spec(w: &World, max_pods: u32) -> String {
    let spec = w
        .spec_text(ADDON_SPEC)
        .replacen(
            "eni_config_label = \"topology.kubernetes.io/zone\"\n",
            "eni_config_label = \"topology.kubernetes.io/zone\"\npod_security_groups = true\n",
            1,
        )
        .replace(
            "managed_policies = [\"AmazonEKSClusterPolicy\"]",
            "managed_policies = [\"AmazonEKSClusterPolicy\", \"AmazonEKSVPCResourceController\"]",
        )
        .replace(
            "instance_types = [\"t3.medium\"]",
            &format!("instance_types = [\"m5.large\"]\nami_type = \"AL2023_x86_64_STANDARD\"\nmax_pods = {max_pods}"),
        );
    assert!(spec.contains("pod_security_groups") && spec.contains("m5.large"));
    spec + r#"
[security_group_policy.web]
cluster_name = "${cluster.main.name}"
pod_selector = { app = "web" }
security_group_ids = ["${vpc.main.outputs.SecurityGroups}"]
"#
}

/// A Deployment of `replicas` pods labelled `app=NAME` in `default`.
fn deployment(w: &World, name: &str, replicas: u32) {
    deployment_with(w, name, replicas, Value::Null);
}

/// A Deployment of `replicas` pods labelled `app=NAME` in `default`, with `node_selector`
/// as its pods' nodeSelector (none if null).
fn deployment_with(w: &World, name: &str, replicas: u32, node_selector: Value) {
    let mut pod_spec = json!({"containers": [{"name": name, "image": "nginx"}]});
    if !node_selector.is_null() {
        pod_spec["nodeSelector"] = node_selector;
    }
    let (status, body) = w.kube(
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
              "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}}})
        .to_string(),
    );
    assert_eq!(status, 201, "create deployment {name}: {body}");
}

/// Deployments `web` and `other` of two pods each in `default`, once all four run with an
/// address.
fn web_and_other_pods(w: &World) -> Vec<Value> {
    deployment(w, "web", 2);
    deployment(w, "other", 2);
    eventually("the web and other pods running with addresses", || {
        let pods: Vec<Value> = w
            .list("/api/v1/namespaces/default/pods")
            .into_iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .filter(|p| !p["status"]["podIP"].as_str().unwrap_or_default().is_empty())
            .collect();
        if pods.len() == 4 {
            Ok(pods)
        } else {
            Err(format!("{} of 4", pods.len()))
        }
    })
}

/// The interface holding an address (primary or secondary), as EC2 shows it.
async fn interface_of(
    aws: &eksnet::cloud::aws::AwsClients,
    ip: &str,
) -> aws_sdk_ec2::types::NetworkInterface {
    aws.ec2
        .describe_network_interfaces()
        .send()
        .await
        .expect("DescribeNetworkInterfaces")
        .network_interfaces()
        .iter()
        .find(|e| {
            e.private_ip_addresses()
                .iter()
                .any(|a| a.private_ip_address() == Some(ip))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no interface holds {ip}"))
}

/// The strings of a JSON list.
fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(String::from))
        .collect()
}

fn groups_of(eni: &aws_sdk_ec2::types::NetworkInterface) -> Vec<String> {
    eni.groups()
        .iter()
        .filter_map(|g| g.group_id().map(String::from))
        .collect()
}

/// Security groups for pods on the add-on path with custom networking, applied: the nodes get
/// a trunk and their max pods counts it (11 on m5.large, and 20 is refused at plan); web pods
/// run on branch interfaces in the pod subnets with the policy's group, other pods on the
/// CNI's interfaces with the ENIConfig's; `verify` exits 0 and `destroy` goes through the
/// trunks and branches.
#[tokio::test]
async fn security_groups_for_pods_give_web_pods_branch_interfaces() {
    let w = world();
    w.proxy_config(json!({"branch_cooldown_ms": 1000}));
    w.without_seeded_aws_node();
    let spec = "examples/sgp.toml";
    // More pods than m5.large's ENIs give once the trunk takes one: refused before any call
    // that changes something.
    w.write_spec(spec, &security_groups_spec(&w, 20));
    let refused = run_ok(w.eksnet().args(["plan", spec]), 1);
    assert!(
        refused
            .stderr
            .contains("max_pods = 20 is more than m5.large can run"),
        "{}",
        refused.stderr
    );
    w.write_spec(spec, &security_groups_spec(&w, 11));
    let plan = run_ok(w.eksnet().args(["plan", spec]), 0);
    assert!(
        plan.stdout.contains("security groups for pods")
            && plan.stdout.contains("max pods 11 per node (m5.large 11)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stderr.contains("replace the ENIConfig's groups"),
        "{}",
        plan.stderr
    );
    let order = [
        "# cluster.main will be created",
        "# security_group_policy.web will be created",
        "# nodegroup.main will be created",
    ]
    .map(|l| {
        plan.stdout
            .find(l)
            .unwrap_or_else(|| panic!("{l}: {}", plan.stdout))
    });
    assert!(order.windows(2).all(|p| p[0] < p[1]), "{order:?}");
    run_ok(w.eksnet().args(["apply", spec, "--auto-approve"]), 0);
    let nodes = settled(&w, 2);
    for n in &nodes {
        assert_eq!(n["status"]["allocatable"]["pods"], "11", "{}", name(n));
        assert_eq!(
            n["status"]["allocatable"]["vpc.amazonaws.com/pod-eni"],
            "9",
            "{}",
            name(n)
        );
        assert_eq!(
            n["metadata"]["labels"]["vpc.amazonaws.com/has-trunk-attached"],
            "true",
            "{}",
            name(n)
        );
    }
    let policy = w.kube(
        "GET",
        "/apis/vpcresources.k8s.aws/v1beta1/namespaces/default/securitygrouppolicies/web",
        "",
    );
    assert_eq!(policy.0, 200, "{}", policy.1);
    let policy_groups = strings(&policy.1["spec"]["securityGroups"]["groupIds"]);
    assert!(
        policy_groups.len() == 1 && policy_groups[0].starts_with("sg-"),
        "{policy_groups:?}"
    );

    let pods = web_and_other_pods(&w);
    let aws = sdk(&w.sandbox.endpoint).await;
    let eni_configs = w.list("/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs");
    for pod in &pods {
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
        let pod_name = name(pod);
        assert!(in_cidr(ip, "192.168.1.0/24"), "{pod_name} has {ip}");
        let eni = interface_of(&aws, ip).await;
        if pod["metadata"]["labels"]["app"] == "web" {
            assert_eq!(eni.description(), Some("aws-k8s-branch-eni"), "{pod_name}");
            assert!(
                eni.attachment().is_none(),
                "a branch is not attached: {eni:?}"
            );
            assert_eq!(
                groups_of(&eni),
                policy_groups,
                "{pod_name}: the policy's groups"
            );
            assert!(
                pod["metadata"]["annotations"]["vpc.amazonaws.com/pod-eni"]
                    .as_str()
                    .is_some_and(|a| a.contains(ip)),
                "{pod}"
            );
        } else {
            let node = nodes
                .iter()
                .find(|n| n["metadata"]["name"] == pod["spec"]["nodeName"])
                .expect("its node");
            assert_eq!(
                eni.description(),
                Some(format!("aws-K8S-{}", instance_of(node)).as_str()),
                "{pod_name}: the CNI's interface"
            );
            let zone = node["metadata"]["labels"]["topology.kubernetes.io/zone"].clone();
            let config = eni_configs
                .iter()
                .find(|c| c["metadata"]["name"] == zone)
                .expect("the node's ENIConfig");
            let config_groups = strings(&config["spec"]["securityGroups"]);
            assert_eq!(
                groups_of(&eni),
                config_groups,
                "{pod_name}: the ENIConfig's groups"
            );
            assert_ne!(config_groups, policy_groups);
        }
    }
    verified_then_destroyed(&w, spec, 6).await;
}

/// The add-on example with `line` added to its `vpc-cni` add-on (the CNI's own role) and
/// the CNI policy taken off its node role.
fn cni_role_of_its_own(example: &str, line: &str) -> String {
    let with_role = example.replacen(
        "name = \"vpc-cni\"\n",
        &format!("name = \"vpc-cni\"\n{line}\n"),
        1,
    );
    let without_policy = with_role.replacen(
        r#"managed_policies = ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly", "AmazonEKS_CNI_Policy"]"#,
        r#"managed_policies = ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly"]"#,
        1,
    );
    assert_ne!(with_role, example, "the example's vpc-cni add-on");
    assert_ne!(without_policy, with_role, "the example's node role");
    without_policy
}

/// The add-on example in its production form (EKS user guide: AmazonEKS_CNI_Policy on a role
/// used only by the VPC CNI): the EKS Pod Identity Agent, the CNI's role trusting Pod
/// Identity, the association for aws-node, and the node role without the CNI policy.
fn production_form(example: &str) -> String {
    let without_policy = cni_role_of_its_own(
        example,
        "pod_identity_associations = [{ service_account = \"aws-node\", role_arn = \"${iam_role.cni.arn}\" }]",
    );
    format!(
        "{without_policy}
[addon.pod_identity_agent]
cluster_name = \"${{cluster.main.name}}\"
name = \"eks-pod-identity-agent\"

[iam_role.cni]
name = \"myCni\"
assume_role_service = \"pods.eks.amazonaws.com\"
managed_policies = [\"AmazonEKS_CNI_Policy\"]
"
    )
}

/// The managed policies attached to a role, by name.
async fn attached(aws: &eksnet::cloud::aws::AwsClients, role: &str) -> Vec<String> {
    aws.iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .expect("ListAttachedRolePolicies")
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_name().map(String::from))
        .collect()
}

/// Moving the CNI policy off the node role in one apply, from the add-on example as it is
/// (the policy on the node role) to the production form: the CNI's role is made, the agent
/// is ACTIVE, the association is set, aws-node rolls onto it, and only then is the policy
/// detached from the node role; the CNI stand-in needs the policy on the role it acts as, and
/// pods created while this happens all get addresses in the pod subnets. The order is read
/// from eksnet's events, the proxy's request record and the fake API server's log.
#[tokio::test]
async fn the_cni_policy_moves_off_the_node_role_with_no_moment_without_permissions() {
    let w = world();
    addon_example_applied(&w);
    let aws = sdk(&w.sandbox.endpoint).await;
    let node_role = "myCustomNetworkingAmazonEKSNodeRole";
    assert!(attached(&aws, node_role)
        .await
        .contains(&"AmazonEKS_CNI_Policy".to_string()));

    w.write_spec(ADDON_SPEC, &production_form(&w.spec_text(ADDON_SPEC)));
    let plan = run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        2,
    );
    assert!(
        position(&plan.stdout, "~ addon.vpc_cni") < position(&plan.stdout, "~ iam_role.node"),
        "{}",
        plan.stdout
    );
    let proxy = addr(&w.sandbox.proxy_url).to_string();
    let (status, body) = http(&proxy, "POST", "/__proxy/reset-stats", "");
    assert_eq!(status, 200, "{body}");
    let (_, log) = w.kube("GET", "/__fake/requests", "");
    let log_start = log.as_array().map_or(0, Vec::len);

    // Pods keep coming while the apply runs.
    let applying = Arc::new(AtomicBool::new(true));
    let maker = {
        let applying = applying.clone();
        let kube = addr(&w.sandbox.kube_url).to_string();
        std::thread::spawn(move || {
            let mut made = 0;
            while applying.load(Ordering::SeqCst) && made < 6 {
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("during-{made}")},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
                let (status, body) = http(
                    &kube,
                    "POST",
                    "/api/v1/namespaces/default/pods",
                    &pod.to_string(),
                );
                assert_eq!(status, 201, "{body}");
                made += 1;
                std::thread::sleep(Duration::from_millis(1500));
            }
            made
        })
    };
    let apply = run_ok(
        w.eksnet()
            .args(["apply", ADDON_SPEC, "--auto-approve", "--json"]),
        0,
    );
    applying.store(false, Ordering::SeqCst);
    let made = maker.join().expect("pod maker");

    // eksnet's order: the role and the agent, then the add-on (which waits until aws-node
    // runs as its association), then the node role.
    let events: Vec<Value> = apply
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let at = |event: &str, address: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["addr"] == address)
            .unwrap_or_else(|| panic!("no {event} of {address} in:\n{}", apply.stderr))
    };
    assert!(at("finished", "iam_role.cni") < at("started", "addon.vpc_cni"));
    assert!(at("finished", "addon.pod_identity_agent") < at("started", "addon.vpc_cni"));
    assert!(at("finished", "addon.vpc_cni") < at("started", "iam_role.node"));
    // AWS's order.
    let stats = proxy_stats(&proxy);
    let first = |op: &str| {
        stats
            .iter()
            .find(|r| r["op"] == op)
            .unwrap_or_else(|| panic!("no {op} request"))
            .clone()
    };
    let seq = |r: &Value| r["seq"].as_u64().unwrap_or(0);
    let (create_role, update_addon, detach) = (
        first("CreateRole"),
        first("UpdateAddon"),
        first("DetachRolePolicy"),
    );
    assert!(seq(&create_role) < seq(&update_addon) && seq(&update_addon) < seq(&detach));
    // Kubernetes: both nodes' aws-node pods were made again with the Pod Identity env after
    // the UpdateAddon and before the policy left the node role.
    let (_, log) = w.kube("GET", "/__fake/requests", "");
    let new_aws_node: Vec<u64> = log
        .as_array()
        .into_iter()
        .flatten()
        .skip(log_start)
        .filter(|r| r["method"] == "POST" && r["path"] == "/api/v1/namespaces/kube-system/pods")
        .filter(|r| {
            let body = r["body"].to_string();
            body.contains("\"aws-node-") && body.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        })
        .map(|r| r["unix_nanos"].as_u64().unwrap_or(0))
        .collect();
    let bodies: Vec<String> = log
        .as_array()
        .into_iter()
        .flatten()
        .skip(log_start)
        .filter(|r| r["method"] == "POST" && r["path"] == "/api/v1/namespaces/kube-system/pods")
        .map(|r| r["body"].to_string())
        .filter(|b| b.contains("\"aws-node-"))
        .map(|b| b.chars().take(600).collect())
        .collect();
    // At least one per node: a pod the roll made before its node's webhook saw the new
    // identity runs as before, and eksnet restarts aws-node again (a third or fourth pod).
    assert!(
        new_aws_node.len() >= 2,
        "a new aws-node pod per node: {bodies:#?}"
    );
    let current: Vec<Value> = w
        .list("/api/v1/namespaces/kube-system/pods")
        .into_iter()
        .filter(|p: &Value| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("aws-node-"))
        })
        .collect();
    assert_eq!(current.len(), 2, "one aws-node pod per node");
    for p in &current {
        assert!(
            p.to_string().contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            "every aws-node pod runs with the Pod Identity env: {p}"
        );
    }
    let nanos = |r: &Value, key: &str| r[key].as_u64().unwrap_or(0);
    for t in &new_aws_node {
        assert!(
            nanos(&update_addon, "start_unix_nanos") < *t,
            "made after the UpdateAddon"
        );
        assert!(
            *t < nanos(&detach, "start_unix_nanos"),
            "made before the detach"
        );
    }

    // The end state: every pod, those made during the apply too, has an address in a pod
    // subnet; the policy is on the CNI's role only; nothing is left to do; verify agrees.
    settled(&w, 2);
    let checked = pods_sit_on_cni_enis(&w, &["192.168.1.0/24"]).await;
    assert_eq!(
        checked,
        2 + made,
        "CoreDNS and the pods made during the apply"
    );
    assert!(!attached(&aws, node_role)
        .await
        .contains(&"AmazonEKS_CNI_Policy".to_string()));
    assert_eq!(attached(&aws, "myCni").await, ["AmazonEKS_CNI_Policy"]);
    for pod in w.list("/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Daws-node") {
        assert!(
            pod.to_string()
                .contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            "{pod}"
        );
    }
    run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        0,
    );
    run_ok(w.eksnet().args(["verify", ADDON_SPEC]), 0);
    run_ok(
        w.eksnet().args(["destroy", ADDON_SPEC, "--auto-approve"]),
        0,
    );
}

fn position(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{text}"))
}

/// The proxy's request record (`GET /__proxy/stats`).
fn proxy_stats(proxy: &str) -> Vec<Value> {
    let (status, text) = http(proxy, "GET", "/__proxy/stats", "");
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["requests"].as_array().cloned().unwrap_or_default()
}

/// The add-on example with the CNI's role through IRSA: the cluster's OIDC provider, a role
/// only `kube-system:aws-node` may assume through it, the add-on's
/// `service_account_role_arn`, the node role without the CNI policy.
fn irsa_form(example: &str) -> String {
    let without_policy = cni_role_of_its_own(
        example,
        "service_account_role_arn = \"${iam_role.cni_irsa.arn}\"",
    );
    format!(
        "{without_policy}
[oidc_provider.main]
url = \"${{cluster.main.oidc_issuer}}\"

[iam_role.cni_irsa]
name = \"myCniIrsa\"
assume_role_web_identity = {{ provider_arn = \"${{oidc_provider.main.arn}}\", service_account = \"kube-system:aws-node\" }}
managed_policies = [\"AmazonEKS_CNI_Policy\"]
"
    )
}

/// IRSA for the CNI, one apply: the OIDC provider of the cluster's own issuer, the role's
/// trust naming it (read back from IAM: no change on the next plan), EKS's annotation of
/// aws-node's service account, aws-node restarted by eksnet (EKS does not restart it for a
/// new role; the running pods keep their env) before the policy leaves the node role. Then
/// the provider's client ids change in place.
#[tokio::test]
async fn the_cni_gets_an_irsa_role_of_the_clusters_oidc_provider() {
    let w = world();
    addon_example_applied(&w);
    w.write_spec(ADDON_SPEC, &irsa_form(&w.spec_text(ADDON_SPEC)));
    let proxy = addr(&w.sandbox.proxy_url).to_string();
    let (status, body) = http(&proxy, "POST", "/__proxy/reset-stats", "");
    assert_eq!(status, 200, "{body}");
    run_ok(w.eksnet().args(["apply", ADDON_SPEC, "--auto-approve"]), 0);

    let aws = sdk(&w.sandbox.endpoint).await;
    let issuer = aws
        .eks
        .describe_cluster()
        .name("my-custom-networking-cluster")
        .send()
        .await
        .expect("DescribeCluster")
        .cluster
        .and_then(|c| c.identity?.oidc?.issuer)
        .expect("the cluster's issuer");
    let host_path = issuer.trim_start_matches("https://");
    let role = aws
        .iam
        .get_role()
        .role_name("myCniIrsa")
        .send()
        .await
        .expect("GetRole")
        .role
        .expect("role");
    let trust: Value = serde_json::from_str(
        &percent_encoding::percent_decode_str(
            role.assume_role_policy_document().unwrap_or_default(),
        )
        .decode_utf8_lossy(),
    )
    .expect("trust JSON");
    let statement = &trust["Statement"][0];
    // A string or a list of one, both IAM's.
    let one = |v: &Value| -> String {
        v.as_str()
            .or_else(|| v.get(0).and_then(Value::as_str))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        one(&statement["Action"]),
        "sts:AssumeRoleWithWebIdentity",
        "{trust}"
    );
    let federated = one(&statement["Principal"]["Federated"]);
    let federated = federated.as_str();
    assert!(
        federated.ends_with(&format!(":oidc-provider/{host_path}")),
        "{trust}"
    );
    let condition = &statement["Condition"]["StringEquals"];
    assert_eq!(
        condition[format!("{host_path}:aud")],
        "sts.amazonaws.com",
        "{trust}"
    );
    assert_eq!(
        condition[format!("{host_path}:sub")],
        "system:serviceaccount:kube-system:aws-node",
        "{trust}"
    );
    // aws-node runs as the role: EKS annotated the service account, eksnet restarted the pods
    // (before the detach, which is after the add-on's update).
    let (_, sa) = w.kube(
        "GET",
        "/api/v1/namespaces/kube-system/serviceaccounts/aws-node",
        "",
    );
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        json!(role.arn())
    );
    for pod in w.list("/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Daws-node") {
        assert!(pod.to_string().contains(role.arn()), "{pod}");
    }
    let stats = proxy_stats(&proxy);
    let seq = |op: &str| {
        stats
            .iter()
            .find(|r| r["op"] == op)
            .and_then(|r| r["seq"].as_u64())
            .unwrap_or_else(|| panic!("no {op}"))
    };
    assert!(seq("CreateOpenIDConnectProvider") < seq("CreateRole"));
    assert!(seq("UpdateAddon") < seq("DetachRolePolicy"));
    settled(&w, 2);
    pods_sit_on_cni_enis(&w, &["192.168.1.0/24"]).await;
    assert!(!attached(&aws, "myCustomNetworkingAmazonEKSNodeRole")
        .await
        .contains(&"AmazonEKS_CNI_Policy".to_string()));
    run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        0,
    );

    // Another audience: the provider is updated in place.
    let spec = w.spec_text(ADDON_SPEC).replacen(
        "url = \"${cluster.main.oidc_issuer}\"\n",
        "url = \"${cluster.main.oidc_issuer}\"\nclient_ids = [\"sts.amazonaws.com\", \"example.com\"]\n",
        1,
    );
    w.write_spec(ADDON_SPEC, &spec);
    let plan = run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        2,
    );
    assert!(
        plan.stdout.contains("~ oidc_provider.main"),
        "{}",
        plan.stdout
    );
    run_ok(w.eksnet().args(["apply", ADDON_SPEC, "--auto-approve"]), 0);
    let provider = aws
        .iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(federated)
        .send()
        .await
        .expect("GetOpenIDConnectProvider");
    let mut ids = provider.client_id_list().to_vec();
    ids.sort();
    assert_eq!(ids, ["example.com", "sts.amazonaws.com"]);
    run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        0,
    );
    run_ok(w.eksnet().args(["verify", ADDON_SPEC]), 0);
    run_ok(
        w.eksnet().args(["destroy", ADDON_SPEC, "--auto-approve"]),
        0,
    );
}

const PRODUCTION_SPEC: &str = "examples/custom-networking-production.toml";

/// The production example as a user runs it: the CNI on a role of its own through Pod
/// Identity, the pod subnets on their own route table out through the stack's NAT gateway,
/// and a SecurityGroupPolicy for `app=web`. Applied in one go on a cluster without
/// self-managed add-ons: AmazonEKS_CNI_Policy is on no node role and the CNI still gives
/// every pod an address in the pod subnets (the sandbox's CNI needs the policy on the role it
/// acts as), the web pods on branch interfaces with the policy's group, the pod subnets
/// associated with the table whose default route is the NAT gateway; `verify` exits 0 and
/// `destroy` leaves nothing of it.
#[tokio::test]
async fn production_example_runs_without_the_cni_policy_on_any_node_role() {
    let w = world();
    w.proxy_config(json!({"branch_cooldown_ms": 1000}));
    w.without_seeded_aws_node();
    run_ok(w.eksnet().args(["validate", PRODUCTION_SPEC]), 0);
    let plan = run_ok(w.eksnet().args(["plan", PRODUCTION_SPEC]), 0);
    // The order the guide asks for: the agent, the CNI with its association, then the nodes;
    // the pod subnets' routes and the policy before the nodes too.
    let order = [
        "# addon.pod_identity_agent will be created",
        "# addon.vpc_cni will be created",
        "# nodegroup.main will be created",
    ]
    .map(|l| position(&plan.stdout, l));
    assert!(order.windows(2).all(|p| p[0] < p[1]), "{}", plan.stdout);
    for before_nodes in [
        "# route_table.pods will be created",
        "# security_group_policy.web will be created",
        "# eni_config.pod_a will be created",
    ] {
        assert!(
            position(&plan.stdout, before_nodes) < order[2],
            "{before_nodes}: {}",
            plan.stdout
        );
    }
    run_ok(
        w.eksnet()
            .args(["apply", PRODUCTION_SPEC, "--auto-approve"]),
        0,
    );
    let nodes = settled(&w, 2);
    let pods = web_and_other_pods(&w);

    let aws = sdk(&w.sandbox.endpoint).await;
    // The CNI policy is on no node role: the nodegroup's role as EKS reports it.
    let nodegroup = aws
        .eks
        .describe_nodegroup()
        .cluster_name("my-production-cluster")
        .nodegroup_name("my-production-nodes")
        .send()
        .await
        .expect("DescribeNodegroup");
    let node_role = nodegroup
        .nodegroup()
        .and_then(|n| n.node_role())
        .and_then(|arn| arn.rsplit('/').next())
        .expect("the nodegroup's role")
        .to_string();
    let node_policies = attached(&aws, &node_role).await;
    assert!(
        !node_policies.contains(&"AmazonEKS_CNI_Policy".to_string()),
        "{node_role}: {node_policies:?}"
    );
    assert_eq!(
        attached(&aws, "myProductionVpcCniRole").await,
        ["AmazonEKS_CNI_Policy"]
    );
    for pod in w.list("/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Daws-node") {
        assert!(
            pod.to_string()
                .contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            "aws-node acts as its Pod Identity role: {pod}"
        );
    }

    // Every pod off the host network is in the pod subnets; the web pods on branch
    // interfaces with the policy's group, the others on the CNI's with the ENIConfig's.
    let policy = w.kube(
        "GET",
        "/apis/vpcresources.k8s.aws/v1beta1/namespaces/default/securitygrouppolicies/web",
        "",
    );
    assert_eq!(policy.0, 200, "{}", policy.1);
    let policy_groups = strings(&policy.1["spec"]["securityGroups"]["groupIds"]);
    for pod in w.list("/api/v1/pods") {
        if host_network(&pod) {
            continue;
        }
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
        assert!(in_cidr(ip, "100.64.0.0/16"), "{}: {ip}", name(&pod));
    }
    for pod in &pods {
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
        let eni = interface_of(&aws, ip).await;
        if pod["metadata"]["labels"]["app"] == "web" {
            assert_eq!(
                eni.description(),
                Some("aws-k8s-branch-eni"),
                "{}",
                name(pod)
            );
            assert_eq!(groups_of(&eni), policy_groups, "{}", name(pod));
        } else {
            let node = nodes
                .iter()
                .find(|n| n["metadata"]["name"] == pod["spec"]["nodeName"])
                .expect("its node");
            assert_eq!(
                eni.description(),
                Some(format!("aws-K8S-{}", instance_of(node)).as_str()),
                "{}",
                name(pod)
            );
            assert_ne!(groups_of(&eni), policy_groups, "{}", name(pod));
        }
    }

    // Both pod subnets use the pods' route table, whose way out is the stack's NAT gateway.
    let subnets = subnets_by_cidr(&aws, &["100.64.0.0/19", "100.64.32.0/19"]).await;
    assert_eq!(subnets.len(), 2);
    for s in &subnets {
        let subnet_id = s.subnet_id().unwrap_or_default();
        let tables = aws
            .ec2
            .describe_route_tables()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("association.subnet-id")
                    .values(subnet_id)
                    .build(),
            )
            .send()
            .await
            .expect("DescribeRouteTables");
        let table = tables.route_tables().first().unwrap_or_else(|| {
            panic!("{subnet_id} is associated with no table (the VPC's main one)")
        });
        assert!(
            table
                .tags()
                .iter()
                .any(|t| t.key() == Some("Name") && t.value() == Some("my-production-pods")),
            "{table:?}"
        );
        assert!(
            table
                .routes()
                .iter()
                .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
                    && r.nat_gateway_id().is_some_and(|n| n.starts_with("nat-"))),
            "{table:?}"
        );
    }

    run_ok(
        w.eksnet()
            .args(["plan", PRODUCTION_SPEC, "--detailed-exitcode"]),
        0,
    );
    verified_then_destroyed(&w, PRODUCTION_SPEC, 6).await;
    let left = aws
        .ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:Name")
                .values("my-production-pods")
                .build(),
        )
        .send()
        .await
        .expect("DescribeRouteTables");
    assert!(left.route_tables().is_empty(), "{left:?}");
}

const AUTO_MODE_SPEC: &str = "examples/auto-mode.toml";

/// The Auto Mode example: the cluster is created with compute, block storage and load
/// balancing on together, and reads back so (a second plan has nothing to do); the NodeClass
/// selects the pod subnets and the pod security group, and its NodePool refers to it. A
/// Deployment selecting the pool makes the provisioner stand-in launch nodes, tagged for the
/// cluster, class and pool, which join with Auto Mode's labels and 110 pods, run no
/// kube-proxy, and give every pod an address in the NodeClass's pod subnet of their zone, on
/// an interface in that subnet with the pod security group; `verify` exits 0. Turning Auto
/// Mode off is one update in place that keeps the IP family, and the pool's nodes go;
/// destroy converges.
#[tokio::test]
async fn auto_mode_cluster_and_its_node_class_are_applied_read_back_and_destroyed() {
    let w = world();
    run_ok(
        w.eksnet().args(["apply", AUTO_MODE_SPEC, "--auto-approve"]),
        0,
    );
    let aws = sdk(&w.sandbox.endpoint).await;
    let describe = |aws: eksnet::cloud::aws::AwsClients| async move {
        aws.eks
            .describe_cluster()
            .name("my-auto-mode-cluster")
            .send()
            .await
            .expect("DescribeCluster")
            .cluster
            .expect("a cluster")
    };
    let c = describe(aws.clone()).await;
    assert_eq!(c.compute_config().and_then(|x| x.enabled()), Some(true));
    assert_eq!(
        c.storage_config()
            .and_then(|s| s.block_storage())
            .and_then(|b| b.enabled()),
        Some(true)
    );
    let network = c.kubernetes_network_config().expect("network config");
    assert_eq!(
        network.elastic_load_balancing().and_then(|e| e.enabled()),
        Some(true)
    );
    let group = c
        .resources_vpc_config()
        .and_then(|v| v.cluster_security_group_id())
        .expect("cluster security group")
        .to_string();
    let pod_subnets: BTreeSet<String> = subnets_by_cidr(&aws, &["100.64.0.0/19", "100.64.32.0/19"])
        .await
        .iter()
        .filter_map(|s| s.subnet_id().map(String::from))
        .collect();
    assert_eq!(pod_subnets.len(), 2);
    let (status, class) = w.kube(
        "GET",
        "/apis/eks.amazonaws.com/v1/nodeclasses/custom-networking",
        "",
    );
    assert_eq!(status, 200, "{class}");
    let ids = |key: &str| -> BTreeSet<String> {
        class["spec"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["id"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(ids("podSubnetSelectorTerms"), pod_subnets);
    assert_eq!(
        ids("podSecurityGroupSelectorTerms"),
        BTreeSet::from([group.clone()])
    );
    assert_eq!(class["spec"]["role"], "myAutoModeNodeRole");
    let (status, pool) = w.kube(
        "GET",
        "/apis/karpenter.sh/v1/nodepools/custom-networking",
        "",
    );
    assert_eq!(status, 200, "{pool}");
    assert_eq!(
        pool["spec"]["template"]["spec"]["nodeClassRef"],
        json!({"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "custom-networking"})
    );
    assert_eq!(pool["spec"]["limits"], json!({"nodes": 10}));
    // Pods for the pool: the provisioner launches its nodes, Auto Mode's networking gives
    // the pods their addresses.
    deployment_with(
        &w,
        "web",
        3,
        json!({"karpenter.sh/nodepool": "custom-networking"}),
    );
    let auto_node = |n: &Value| {
        n["metadata"]["labels"]["eks.amazonaws.com/compute-type"] == "auto"
            && n["metadata"]["labels"]["karpenter.sh/nodepool"] == "custom-networking"
            && n["metadata"]["labels"]["eks.amazonaws.com/nodeclass"] == "custom-networking"
    };
    let (nodes, pods) = eventually(
        "the pool's nodes Ready and every pod there with an IP",
        || {
            let nodes: BTreeMap<String, Value> = w
                .list("/api/v1/nodes")
                .into_iter()
                .filter(|n| auto_node(n) && ready(n))
                .map(|n| (name(&n), n))
                .collect();
            let pods: Vec<Value> = w
                .list("/api/v1/pods")
                .into_iter()
                .filter(|p| nodes.contains_key(p["spec"]["nodeName"].as_str().unwrap_or_default()))
                .collect();
            let web = pods
                .iter()
                .filter(|p| p["metadata"]["labels"]["app"] == "web")
                .count();
            let waiting: Vec<String> = pods
                .iter()
                .filter(|p| {
                    p["status"]["phase"] != "Running"
                        || p["status"]["podIP"].as_str().unwrap_or_default().is_empty()
                })
                .map(name)
                .collect();
            if web == 3 && waiting.is_empty() {
                Ok((nodes, pods))
            } else {
                Err(format!(
                    "{} nodes, {web} of 3 web pods there, waiting: {waiting:?}",
                    nodes.len()
                ))
            }
        },
    );
    // The pod subnets as moto has them, by zone.
    let described = aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(pod_subnets.iter().cloned().collect()))
        .send()
        .await
        .expect("DescribeSubnets");
    let by_zone: BTreeMap<String, (String, String)> = described
        .subnets()
        .iter()
        .map(|s| {
            (
                s.availability_zone().unwrap_or_default().to_string(),
                (
                    s.subnet_id().unwrap_or_default().to_string(),
                    s.cidr_block().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(by_zone.len(), 2, "{by_zone:?}");
    for (node_name, node) in &nodes {
        // Max pods: /28 prefixes on m5.large's two secondary interfaces, capped at 110.
        assert_eq!(node["status"]["allocatable"]["pods"], "110", "{node_name}");
        // Tagged for the cluster, class and pool (the tags AmazonEKSComputePolicy's
        // conditions name).
        let instance = aws
            .ec2
            .describe_instances()
            .instance_ids(instance_of(node))
            .send()
            .await
            .expect("DescribeInstances");
        let tags: BTreeMap<String, String> = instance
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .flat_map(|i| i.tags())
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect();
        for (k, v) in [
            ("eks:eks-cluster-name", "my-auto-mode-cluster"),
            ("eks:kubernetes-node-class-name", "custom-networking"),
            ("eks:kubernetes-node-pool-name", "custom-networking"),
        ] {
            assert_eq!(
                tags.get(k).map(String::as_str),
                Some(v),
                "{node_name}: {tags:?}"
            );
        }
    }
    let mut checked = 0;
    for pod in &pods {
        let pod_name = format!("{}/{}", pod["metadata"]["namespace"], name(pod));
        // kube-proxy's node affinity (`eks.amazonaws.com/compute-type NotIn [.., auto]`) keeps
        // it off; the seed's aws-node (v1.18, older than that affinity) lands there as on EKS,
        // on the host network, and Auto Mode's networking ignores its settings.
        assert_ne!(
            pod["metadata"]["ownerReferences"][0]["name"], "kube-proxy",
            "{pod_name}: Auto Mode nodes run no kube-proxy"
        );
        if host_network(pod) {
            continue;
        }
        checked += 1;
        let node = &nodes[pod["spec"]["nodeName"].as_str().unwrap_or_default()];
        let zone = node["metadata"]["labels"]["topology.kubernetes.io/zone"]
            .as_str()
            .unwrap_or_default();
        let (subnet, cidr) = by_zone
            .get(zone)
            .unwrap_or_else(|| panic!("no pod subnet in {zone}"));
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
        assert!(
            in_cidr(ip, cidr),
            "{pod_name} in {zone} has IP {ip}, outside its pod subnet {cidr}"
        );
        let eni = interface_of(&aws, ip).await;
        assert_eq!(eni.subnet_id(), Some(subnet.as_str()), "{pod_name}'s ENI");
        assert_eq!(
            groups_of(&eni),
            std::slice::from_ref(&group),
            "{pod_name}'s ENI groups"
        );
        let attachment = eni.attachment().expect("an attached interface");
        assert_eq!(
            attachment.instance_id(),
            Some(instance_of(node).as_str()),
            "{pod_name}'s ENI is on its node"
        );
        assert!(
            attachment.device_index().unwrap_or(0) >= 1,
            "{pod_name}'s IP is not on the node's primary interface"
        );
    }
    assert!(checked >= 3, "the web pods at least: {checked}");
    let verify = run_ok(w.eksnet().args(["verify", AUTO_MODE_SPEC]), 0);
    assert!(
        verify
            .stdout
            .contains(&format!("{checked} checked, 0 outside the pod subnets")),
        "{}",
        verify.stdout
    );
    run_ok(
        w.eksnet()
            .args(["plan", AUTO_MODE_SPEC, "--detailed-exitcode"]),
        0,
    );
    // Auto Mode off: the NodeClass goes first (nothing would read it), then one
    // UpdateClusterConfig with the three settings off.
    let off = without_blocks(
        &w.spec_text(AUTO_MODE_SPEC),
        &["auto_mode_node_class.pods", "access_entry.auto_nodes"],
    )
    .replace("auto_mode = true\n", "");
    w.write_spec(AUTO_MODE_SPEC, &off);
    let applied = run_ok(
        w.eksnet().args(["apply", AUTO_MODE_SPEC, "--auto-approve"]),
        0,
    );
    let c = describe(aws.clone()).await;
    assert_eq!(
        c.compute_config().and_then(|x| x.enabled()),
        Some(false),
        "{}",
        applied.stdout
    );
    assert_eq!(
        c.kubernetes_network_config()
            .and_then(|k| k.ip_family())
            .map(|f| f.as_str().to_string()),
        Some("ipv4".to_string()),
        "an update names only the fields it changes"
    );
    assert!(w.list("/apis/eks.amazonaws.com/v1/nodeclasses").is_empty());
    assert!(w.list("/apis/karpenter.sh/v1/nodepools").is_empty());
    // The pool gone, its nodes go.
    let start = Instant::now();
    while instances_running(&w).await > 0 {
        assert!(start.elapsed() < SETTLE, "the Auto Mode node still runs");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run_ok(
        w.eksnet()
            .args(["plan", AUTO_MODE_SPEC, "--detailed-exitcode"]),
        0,
    );
    run_ok(
        w.eksnet()
            .args(["destroy", AUTO_MODE_SPEC, "--auto-approve"]),
        0,
    );
}

const KARPENTER_SPEC: &str = "examples/karpenter.toml";
const EC2_NODE_CLASSES: &str = "/apis/karpenter.k8s.aws/v1/ec2nodeclasses";
const NODE_POOLS: &str = "/apis/karpenter.sh/v1/nodepools";

/// Replaces an object with what `edit` makes of it (GET, then PUT: the fake API server takes
/// JSON merge patches only under their own media type).
fn replace(w: &World, path: &str, edit: impl FnOnce(&mut Value)) {
    let (status, mut object) = w.kube("GET", path, "");
    assert_eq!(status, 200, "GET {path}: {object}");
    edit(&mut object);
    let (status, body) = w.kube("PUT", path, &object.to_string());
    assert_eq!(status, 200, "PUT {path}: {body}");
}

fn karpenter_nodes(w: &World) -> Vec<Value> {
    w.list("/api/v1/nodes")
        .into_iter()
        .filter(|n| n["metadata"]["labels"]["karpenter.sh/nodepool"] == "default")
        .collect()
}

/// `examples/karpenter.toml`: the EC2NodeClass and NodePool are written after the ENIConfigs,
/// with the node class's max pods for custom networking (20 on m5.large). The sandbox's
/// Karpenter stand-in then acts on them: a Deployment on the pool's nodes with more pods than
/// one node holds makes Karpenter launch m5.large nodes in both zones, tagged as Karpenter
/// tags them; they join with max pods 20 and every pod on them gets an address of the pod
/// subnets, and `verify` exits 0. Without the class's max pods, the node that replaces a lost
/// one gets Karpenter's own count (29: the primary ENI counted), and 9 of the pods bound
/// there stay without an address.
/// Destroy deletes the pool first, whose nodes Karpenter then terminates.
#[tokio::test]
async fn karpenter_nodes_join_with_the_node_class_max_pods_and_pods_get_pod_subnet_ips() {
    let w = world();
    w.without_seeded_aws_node();
    let plan = run_ok(
        w.eksnet()
            .args(["plan", KARPENTER_SPEC, "--detailed-exitcode"]),
        2,
    );
    let out = &plan.stdout;
    let order = [
        "# addon.vpc_cni will be created",
        "# eni_config.pod_b will be created",
        "# karpenter_node_class.default will be created",
        "# karpenter_node_pool.default will be created",
    ]
    .map(|l| position(out, l));
    assert!(order.windows(2).all(|p| p[0] < p[1]), "{order:?}\n{out}");
    assert!(
        plan.stderr.contains("m5.xlarge could run 44 but runs 20"),
        "{}",
        plan.stderr
    );
    run_ok(
        w.eksnet().args(["apply", KARPENTER_SPEC, "--auto-approve"]),
        0,
    );
    let class_path = format!("{EC2_NODE_CLASSES}/default");
    let (_, class) = w.kube("GET", &class_path, "");
    assert_eq!(class["spec"]["kubelet"]["maxPods"], 20, "{class}");
    assert_eq!(
        class["spec"]["role"], "myKarpenterAmazonEKSNodeRole",
        "{class}"
    );
    assert_eq!(
        class["spec"]["amiSelectorTerms"],
        json!([{"alias": "al2023@latest"}]),
        "{class}"
    );
    let (_, pool) = w.kube("GET", &format!("{NODE_POOLS}/default"), "");
    assert_eq!(
        pool["spec"]["template"]["spec"]["nodeClassRef"]["name"], "default",
        "{pool}"
    );
    assert_eq!(pool["spec"]["limits"]["nodes"], "4", "{pool}");
    // Both ENIConfigs were written (server-side apply) before the class, the class before
    // the pool.
    let (_, requests) = w.kube("GET", "/__fake/requests", "");
    let writes: Vec<(usize, String)> = requests
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["method"] == "PATCH")
        .filter_map(|r| r["path"].as_str().map(str::to_string))
        .enumerate()
        .collect();
    let last = |needle: &str| {
        writes
            .iter()
            .filter(|(_, p)| p.contains(needle))
            .map(|(i, _)| *i)
            .max()
    };
    let first = |needle: &str| {
        writes
            .iter()
            .find(|(_, p)| p.contains(needle))
            .map(|(i, _)| *i)
    };
    assert_eq!(
        writes
            .iter()
            .filter(|(_, p)| p.contains("/eniconfigs/"))
            .count(),
        2,
        "{writes:?}"
    );
    assert!(first("/ec2nodeclasses/").is_some(), "{writes:?}");
    assert!(
        last("/eniconfigs/") < first("/ec2nodeclasses/"),
        "{writes:?}"
    );
    assert!(
        last("/ec2nodeclasses/") < first("/nodepools/"),
        "{writes:?}"
    );
    run_ok(
        w.eksnet()
            .args(["plan", KARPENTER_SPEC, "--detailed-exitcode"]),
        0,
    );

    // 30 pods on the pool's nodes: an m5.large holds 18 besides aws-node and kube-proxy.
    deployment_with(&w, "web", 30, json!({"karpenter.sh/nodepool": "default"}));
    let nodes = eventually("two Karpenter nodes Ready and every pod with an IP", || {
        let nodes = karpenter_nodes(&w);
        let ready_nodes = nodes.iter().filter(|n| ready(n)).count();
        let waiting = w
            .list("/api/v1/pods")
            .iter()
            .filter(|p| p["status"]["podIP"].as_str().unwrap_or_default().is_empty())
            .count();
        if nodes.len() == 2 && ready_nodes == 2 && waiting == 0 {
            Ok(nodes)
        } else {
            Err(format!(
                "{} Karpenter nodes, {ready_nodes} Ready, {waiting} pods without IP",
                nodes.len()
            ))
        }
    });
    let zones: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str())
        .collect();
    assert_eq!(zones, BTreeSet::from(["us-west-2a", "us-west-2b"]));
    for n in &nodes {
        let labels = &n["metadata"]["labels"];
        assert_eq!(n["status"]["allocatable"]["pods"], "20", "{n}");
        assert_eq!(
            labels["node.kubernetes.io/instance-type"], "m5.large",
            "{n}"
        );
        assert_eq!(labels["karpenter.k8s.aws/ec2nodeclass"], "default", "{n}");
        assert_eq!(labels["karpenter.sh/capacity-type"], "on-demand", "{n}");
    }
    let aws = sdk(&w.sandbox.endpoint).await;
    let tagged = aws
        .ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:karpenter.sh/nodepool")
                .values("default")
                .build(),
        )
        .send()
        .await
        .expect("DescribeInstances");
    let instances: Vec<_> = tagged
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(instances.len(), 2, "{instances:?}");
    for i in &instances {
        let tag = |k: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
                .map(str::to_string)
        };
        assert_eq!(
            tag("karpenter.k8s.aws/ec2nodeclass").as_deref(),
            Some("default")
        );
        assert_eq!(
            tag("eks:eks-cluster-name").as_deref(),
            Some("my-karpenter-cluster")
        );
        assert_eq!(
            tag("kubernetes.io/cluster/my-karpenter-cluster").as_deref(),
            Some("owned")
        );
    }
    // The 30 web pods and the two CoreDNS replicas, on CNI ENIs in the pod subnets.
    let checked = pods_sit_on_cni_enis(&w, &["192.168.1.0/24"]).await;
    assert_eq!(checked, 32);
    let verify = run_ok(w.eksnet().args(["verify", KARPENTER_SPEC]), 0);
    assert!(
        verify
            .stdout
            .contains("32 checked, 0 outside the pod subnets"),
        "{}",
        verify.stdout
    );

    // Without the class's max pods (as if the class were written by hand), the node that
    // replaces a lost one gets Karpenter's own count: 29, 27 besides the DaemonSets, but its
    // two pod ENIs hold 18 addresses. (The lost node's zone, so that its pod subnet has room
    // once the CNI's leaked ENIs are cleaned: a /27 holds the ENIs of two nodes, not three.)
    replace(&w, &class_path, |c| {
        c["spec"].as_object_mut().expect("a spec").remove("kubelet");
    });
    let lost = nodes
        .iter()
        .find(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"] == "us-west-2b")
        .map(instance_of)
        .expect("a node in us-west-2b");
    aws.ec2
        .terminate_instances()
        .instance_ids(&lost)
        .send()
        .await
        .expect("TerminateInstances");
    let replacement = eventually("a replacement node of 29 pods", || {
        karpenter_nodes(&w)
            .into_iter()
            .find(|n| n["status"]["allocatable"]["pods"] == "29" && ready(n))
            .ok_or_else(|| "none yet".to_string())
    });
    assert_eq!(
        replacement["metadata"]["labels"]["topology.kubernetes.io/zone"], "us-west-2b",
        "{replacement}"
    );
    // 18 web pods on the first node fill it; the other 27 go to the replacement.
    let web = "/apis/apps/v1/namespaces/default/deployments/web";
    replace(&w, web, |d| d["spec"]["replicas"] = json!(45));
    let without = eventually("the replacement full, 18 of its pods with an IP", || {
        let on_it: Vec<Value> = w
            .list("/api/v1/pods")
            .into_iter()
            .filter(|p| p["spec"]["nodeName"] == name(&replacement).as_str())
            .filter(|p| !host_network(p))
            .collect();
        let with_ip = on_it
            .iter()
            .filter(|p| !p["status"]["podIP"].as_str().unwrap_or_default().is_empty())
            .count();
        if on_it.len() == 27 && with_ip == 18 {
            Ok(on_it.len() - with_ip)
        } else {
            Err(format!("{} pods on it, {with_ip} with an IP", on_it.len()))
        }
    });
    assert_eq!(without, 9);
    run_ok(
        w.eksnet()
            .args(["destroy", KARPENTER_SPEC, "--auto-approve"]),
        0,
    );
    assert_eq!(instances_running(&w).await, 0, "the nodes are gone");
}
