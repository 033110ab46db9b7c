//! `eksnet roll` end to end in the sandbox with its data plane on: a cluster made outside
//! eksnet with the AWS SDK (`common::existing_cluster`: the VPC stack, the cluster, a managed
//! nodegroup), plus an Auto Scaling group of plain instances that join as self-managed nodes,
//! a Deployment with a PodDisruptionBudget; then a spec that references the cluster and VPC as
//! existing and turns custom networking on. What is checked is the effect: every node
//! replaced by its own owner, every pod in the pod subnets, the budget never broken (a watcher
//! polls the pods every 50 ms), `verify` clean, and a destroy that leaves the cluster, the VPC,
//! the nodegroup and the group in place.

mod common;

use common::existing_cluster::{self, ExistingCluster, ExistingClusterOptions};
use common::sandbox::{Sandbox, SandboxOptions};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POD_BLOCK: &str = "100.64.0.0/16";

struct World {
    sandbox: Sandbox,
    made: ExistingCluster,
    dir: tempfile::TempDir,
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

impl World {
    async fn new(opts: ExistingClusterOptions) -> World {
        let sandbox = Sandbox::up(SandboxOptions::default());
        let made = existing_cluster::build(&sandbox, &opts).await;
        let w = World {
            sandbox,
            made,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let (status, body) = http(
            &addr(&w.sandbox.proxy_url),
            "POST",
            "/__proxy/config",
            &json!({"eni_cleanup_ms": 2000}).to_string(),
        );
        assert_eq!(status, 200, "proxy config: {body}");
        w
    }

    fn eksnet(&self) -> Command {
        let mut c = eksnet(&self.sandbox.endpoint, self.dir.path());
        c.env("EKSNET_KUBECONFIG", &self.sandbox.kubeconfig);
        if let Some(ctx) = self.sandbox.env.get("EKSNET_KUBE_CONTEXT") {
            c.env("EKSNET_KUBE_CONTEXT", ctx);
        }
        c.env("EKSNET_POLL_MAX_MS", "200");
        c
    }

    fn run(&self, args: &[&str], code: i32) -> Run {
        run_ok(self.eksnet().args(args), code)
    }

    /// Starts `roll` and kills it (SIGKILL: no chance to tidy up) at the first stderr line
    /// containing `at`; the lines it wrote. Fails if it ends before that line.
    fn roll_killed_at(&self, at: &str) -> Vec<String> {
        let mut child = self
            .eksnet()
            .args(["roll", "spec.toml", "--auto-approve"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn roll");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = Vec::new();
        let mut killed = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.push(line.clone());
            if line.contains(at) {
                child.kill().expect("kill roll");
                killed = true;
                break;
            }
        }
        let _ = child.wait();
        assert!(killed, "the roll ended before {at:?}: {lines:?}");
        lines
    }

    /// After a kill: the next roll is refused for the dead run's lock, reported stale with
    /// the command that frees it, which is then run.
    fn free_stale_lock(&self) {
        let locked = self.run(&["roll", "spec.toml", "--auto-approve"], 1);
        assert!(locked.stderr.contains("stale lock"), "{}", locked.stderr);
        let id = locked
            .stderr
            .split("eksnet force-unlock ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no force-unlock hint: {}", locked.stderr));
        self.run(&["force-unlock", id, "--state", "state/spec.db"], 0);
    }

    fn kube(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = http(
            &addr(&self.sandbox.kube_url),
            method,
            path,
            &body.to_string(),
        );
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn list(&self, path: &str) -> Vec<Value> {
        let (status, v) = self.kube("GET", path, &Value::Null);
        assert_eq!(status, 200, "GET {path}: {v}");
        v["items"].as_array().cloned().unwrap_or_default()
    }

    fn ready_nodes(&self) -> BTreeSet<String> {
        self.list("/api/v1/nodes")
            .iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
            .collect()
    }

    fn wait(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ok() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{what}: not so after 120 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A Deployment `web` of `replicas` pods and its budget.
    fn workload(&self, replicas: u32, budget: Value) {
        let (s, v) = self.kube(
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
        );
        assert_eq!(s, 201, "create deployment: {v}");
        let (s, v) = self.kube(
            "POST",
            "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
            &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": budget.as_object().cloned().map(|mut m| {
                m.insert("selector".into(), json!({"matchLabels": {"app": "web"}}));
                Value::Object(m)
            })}),
        );
        assert_eq!(s, 201, "create pdb: {v}");
    }

    fn running_web(&self) -> usize {
        healthy_web(&self.list("/api/v1/namespaces/default/pods"))
    }

    /// The spec `eksnet init` would write for this cluster: the VPC and cluster only read,
    /// a block, a pod subnet per AZ, the aws-node settings and the ENIConfigs.
    fn write_spec(&self) {
        let m = &self.made;
        let mut text = format!(
            "[settings]\nregion = \"{}\"\n\n[vpc.main]\nid = \"{}\"\n\n[cluster.main]\nname = \"{}\"\nexisting = true\n\n[cidr_block.pods]\nvpc_id = \"${{vpc.main.id}}\"\ncidr_block = \"{POD_BLOCK}\"\n\n[aws_node.main]\ncluster_name = \"${{cluster.main.name}}\"\ncustom_network = true\n",
            m.region, m.vpc_id, m.cluster
        );
        for (i, az) in m.availability_zones.iter().enumerate() {
            text.push_str(&format!(
                "\n[subnet.pods_{i}]\nvpc_id = \"${{vpc.main.id}}\"\ncidr_block = \"100.64.{}.0/19\"\navailability_zone = \"{az}\"\n\n[eni_config.pods_{i}]\ncluster_name = \"${{cluster.main.name}}\"\nsubnet_id = \"${{subnet.pods_{i}.id}}\"\n",
                i * 32
            ));
        }
        std::fs::write(self.dir.path().join("spec.toml"), text).expect("write spec");
    }

    /// An Auto Scaling group of `n` plain instances tagged for the cluster: self-managed
    /// nodes (EKS user guide, `nodes/worker.adoc`).
    async fn self_managed_group(&self, name: &str, n: i32) {
        let aws = existing_cluster::clients(&self.sandbox).await;
        aws.ec2
            .create_launch_template()
            .launch_template_name(name)
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id("ami-ekslinux")
                    .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
                    .build(),
            )
            .send()
            .await
            .expect("CreateLaunchTemplate");
        aws.autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_name(name)
                    .version("$Latest")
                    .build(),
            )
            .min_size(1)
            .max_size(n + 1)
            .desired_capacity(n)
            .vpc_zone_identifier(self.made.private_subnets.join(","))
            .tags(
                aws_sdk_autoscaling::types::Tag::builder()
                    .key(format!("kubernetes.io/cluster/{}", self.made.cluster))
                    .value("owned")
                    .propagate_at_launch(true)
                    .build(),
            )
            .send()
            .await
            .expect("CreateAutoScalingGroup");
    }
}

/// Web pods Ready and not being deleted: what the budget counts as healthy.
fn healthy_web(pods: &[Value]) -> usize {
    pods.iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count()
}

fn in_block(ip: &str) -> bool {
    let net: ipnet::Ipv4Net = POD_BLOCK.parse().expect("block");
    ip.parse::<Ipv4Addr>().is_ok_and(|a| net.contains(&a))
}

/// What the watcher saw at its low point: the fewest healthy web pods, and then each web pod
/// as `name node phase ready deleting`.
type LowPoint = (usize, Vec<String>);

/// Polls the web pods every 50 ms until stopped; the fewest healthy ones seen, with the pods
/// as they were then (to tell which one went, and how, when a budget is broken).
fn watcher(kube_url: String) -> (Arc<AtomicBool>, std::thread::JoinHandle<LowPoint>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut low: LowPoint = (usize::MAX, Vec::new());
        while !s.load(Ordering::SeqCst) {
            let (status, text) = http(&kube_url, "GET", "/api/v1/namespaces/default/pods", "");
            if status == 200 {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let pods = v["items"].as_array().cloned().unwrap_or_default();
                let healthy = healthy_web(&pods);
                if healthy < low.0 {
                    let seen = pods
                        .iter()
                        .filter(|p| p["metadata"]["labels"]["app"] == "web")
                        .map(|p| {
                            format!(
                                "{} {} {} ready={} deleting={}",
                                p["metadata"]["name"].as_str().unwrap_or("?"),
                                p["spec"]["nodeName"].as_str().unwrap_or("-"),
                                p["status"]["phase"].as_str().unwrap_or("?"),
                                healthy_web(std::slice::from_ref(p)) == 1,
                                !p["metadata"]["deletionTimestamp"].is_null()
                            )
                        })
                        .collect();
                    low = (healthy, seen);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        low
    });
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn roll_moves_every_node_whoever_owns_it_and_never_breaks_the_budget() {
    let w = World::new(ExistingClusterOptions::default()).await;
    w.self_managed_group("self-managed", 2).await;
    w.wait("4 Ready nodes", || w.ready_nodes().len() >= 4);
    let before = w.ready_nodes();
    w.workload(6, json!({"minAvailable": 5}));
    w.wait("6 web pods running", || w.running_web() >= 6);
    // The spec written from the live cluster: it validates, and its plan only adds (the VPC
    // and the cluster recorded, the CNI setting added to aws-node).
    w.run(
        &["init", "--cluster", &w.made.cluster, "--out", "spec.toml"],
        0,
    );
    w.run(&["validate", "spec.toml"], 0);
    let plan = w.run(&["plan", "spec.toml", "--json"], 0);
    let plan: Value = serde_json::from_str(&plan.stdout).expect("plan --json");
    existing_cluster::assert_plan_only_adds(&plan, &|addr| addr == "aws_node.main");
    let spec = std::fs::read_to_string(w.dir.path().join("spec.toml")).expect("spec");
    assert!(
        spec.contains(&format!("cidr_block = \"{POD_BLOCK}\"")),
        "{spec}"
    );
    // Both node sources are named, neither declared.
    for source in [
        "managed nodegroup `workers`",
        "Auto Scaling group `self-managed`",
    ] {
        assert!(spec.contains(source), "{source} not in\n{spec}");
    }
    assert!(!spec.contains("[nodegroup."), "{spec}");

    // The plan lists every node, by owner, whether or not the spec declares it.
    let plan = w.run(&["plan", "spec.toml"], 0);
    assert!(
        plan.stdout.contains(
            "Existing nodes of cluster existing whose pods keep node-subnet addresses (4)"
        ),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("managed nodegroup workers:"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("Auto Scaling group self-managed:"),
        "{}",
        plan.stdout
    );
    // Only read: the cluster and the VPC are neither changed nor deleted.
    assert!(
        plan.stdout
            .contains("cluster.main will be recorded in the state (no change in AWS)"),
        "{}",
        plan.stdout
    );
    w.run(&["apply", "spec.toml", "--auto-approve"], 0);

    let dry = w.run(
        &["roll", "spec.toml", "--dry-run", "--max-unavailable", "2"],
        0,
    );
    assert!(
        dry.stdout.contains("4 node(s) to move, 2 at a time"),
        "{}",
        dry.stdout
    );

    let (stop, fewest) = watcher(addr(&w.sandbox.kube_url));
    let roll = w.run(
        &[
            "roll",
            "spec.toml",
            "--auto-approve",
            "--max-unavailable",
            "2",
        ],
        0,
    );
    stop.store(true, Ordering::SeqCst);
    let (fewest, seen) = fewest.join().expect("watcher");
    assert!(
        fewest >= 5,
        "the budget (minAvailable 5) was broken: {fewest} healthy web pods at one point: {seen:#?}\n{}",
        roll.stderr
    );
    assert_eq!(
        roll.stdout.lines().filter(|l| l.contains(" → ")).count(),
        4,
        "{}",
        roll.stdout
    );

    // Every node is new, and every pod is in the pod subnets. (A surged node's instance is
    // the last thing to end: its Node leaves once the node lifecycle sees it gone.)
    w.wait("the old nodes gone", || {
        w.ready_nodes().is_disjoint(&before)
    });
    w.wait("4 Ready nodes again", || w.ready_nodes().len() >= 4);
    for p in w.list("/api/v1/pods") {
        if p["spec"]["hostNetwork"] == true {
            continue;
        }
        let ip = p["status"]["podIP"].as_str().unwrap_or_default();
        assert!(
            in_block(ip),
            "pod {} has {ip}, outside {POD_BLOCK}",
            p["metadata"]["name"]
        );
    }
    w.run(&["verify", "spec.toml"], 0);
    let again = w.run(&["roll", "spec.toml", "--auto-approve"], 0);
    assert!(again.stderr.contains("nothing to roll"), "{}", again.stderr);

    // The destroy moves the nodes back off the pod subnets and leaves every owner in place.
    let destroy = w.run(&["destroy", "spec.toml", "--auto-approve"], 0);
    assert!(
        destroy.stderr.contains("stage 2 of 3"),
        "{}",
        destroy.stderr
    );
    let aws = existing_cluster::clients(&w.sandbox).await;
    let c = aws
        .eks
        .describe_cluster()
        .name(&w.made.cluster)
        .send()
        .await
        .expect("cluster");
    assert_eq!(
        c.cluster().and_then(|c| c.status()).map(|s| s.as_str()),
        Some("ACTIVE")
    );
    aws.eks
        .describe_nodegroup()
        .cluster_name(&w.made.cluster)
        .nodegroup_name("workers")
        .send()
        .await
        .expect("the nodegroup is still there");
    let groups = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("self-managed")
        .send()
        .await
        .expect("DescribeAutoScalingGroups");
    assert_eq!(
        groups
            .auto_scaling_groups()
            .first()
            .and_then(|g| g.desired_capacity()),
        Some(2)
    );
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .vpc_ids(&w.made.vpc_id)
        .send()
        .await
        .expect("vpc");
    assert_eq!(vpcs.vpcs().len(), 1);
    // The pods are back in the node subnets, on nodes that are Ready.
    w.wait("4 Ready nodes after the destroy", || {
        w.ready_nodes().len() >= 4
    });
    w.wait("6 web pods running after the destroy", || {
        w.running_web() >= 6
    });
    for p in w.list("/api/v1/namespaces/default/pods") {
        let ip = p["status"]["podIP"].as_str().unwrap_or_default();
        assert!(
            !in_block(ip),
            "pod {} still has {ip}",
            p["metadata"]["name"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_roll_killed_midway_finishes_without_touching_a_node_twice() {
    let mut opts = ExistingClusterOptions::default();
    if let Some(ng) = opts.nodegroup.as_mut() {
        ng.desired_size = 3;
        ng.max_size = 4;
    }
    let w = World::new(opts).await;
    w.wait("3 Ready nodes", || w.ready_nodes().len() >= 3);
    let before = w.ready_nodes();
    w.workload(3, json!({"maxUnavailable": 1}));
    w.wait("3 web pods running", || w.running_web() >= 3);
    w.write_spec();
    w.run(&["apply", "spec.toml", "--auto-approve"], 0);

    // Killed once the first node is done; run again, the killed run's lock is refused as
    // stale, with the command that frees it, as for any eksnet command killed under its lock.
    let first = w.roll_killed_at(" → ");
    w.free_stale_lock();
    // Then it finishes, and tells the earlier run's node from the rest.
    let r = w.run(&["roll", "spec.toml", "--auto-approve"], 0);
    assert!(r.stderr.contains("moved by an earlier run"), "{}", r.stderr);
    let after = w.ready_nodes();
    assert!(
        after.is_disjoint(&before),
        "old nodes left: {before:?} / {after:?}"
    );
    w.run(&["verify", "spec.toml"], 0);

    // Each old node was cordoned and its instance terminated once, over both runs: the proxy's
    // log of eksnet's requests and the fake API server's.
    let terminated: Vec<String> = first
        .iter()
        .chain(
            r.stderr
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
                .iter(),
        )
        .filter_map(|l| l.split(": terminate ").nth(1).map(String::from))
        .collect();
    let unique: BTreeSet<&String> = terminated.iter().collect();
    assert_eq!(terminated.len(), 3, "terminations: {terminated:?}");
    assert_eq!(
        unique.len(),
        3,
        "an instance was terminated twice: {terminated:?}"
    );
    let (s, log) = http(&addr(&w.sandbox.kube_url), "GET", "/__fake/requests", "");
    assert_eq!(s, 200, "request log: {log}");
    let log: Value = serde_json::from_str(&log).unwrap_or(Value::Null);
    let cordons: Vec<String> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["user_agent"]
                .as_str()
                .is_some_and(|u| u.starts_with("eksnet/"))
        })
        .filter(|e| e["method"] == "PATCH")
        .filter_map(|e| {
            e["path"]
                .as_str()?
                .strip_prefix("/api/v1/nodes/")
                .map(String::from)
        })
        .collect();
    let cordoned: BTreeSet<&String> = cordons.iter().collect();
    assert_eq!(cordoned.len(), 3, "cordons: {cordons:?}");
    assert!(
        cordoned.iter().all(|n| before.contains(*n)),
        "a new node was cordoned: {cordons:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_that_blocks_for_ever_stops_roll_with_its_name() {
    let w = World::new(ExistingClusterOptions::default()).await;
    w.wait("2 Ready nodes", || w.ready_nodes().len() >= 2);
    // minAvailable = every pod: no eviction can ever be allowed. Refused before any change.
    w.workload(2, json!({"minAvailable": 2}));
    w.wait("2 web pods running", || w.running_web() >= 2);
    w.write_spec();
    w.run(&["apply", "spec.toml", "--auto-approve"], 0);
    let r = w.run(&["roll", "spec.toml", "--auto-approve"], 1);
    assert!(r.stderr.contains("PodDisruptionBudget default/web can never allow an eviction (minAvailable 2 with 2 pod(s) it selects)"), "{}", r.stderr);
    let cordoned = w
        .list("/api/v1/nodes")
        .iter()
        .filter(|n| n["spec"]["unschedulable"] == true)
        .count();
    assert_eq!(cordoned, 0, "a node was cordoned by a refused roll");

    // A budget that could allow one, but never does: a third pod it selects never becomes
    // Ready (pinned to a node that does not exist), so 2 healthy of minAvailable 2 allow no
    // eviction. The node's timeout stops the roll with the budget's name.
    let (s, v) = w.kube(
        "POST",
        "/api/v1/namespaces/default/pods",
        &json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-stuck", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": "nowhere"},
                     "containers": [{"name": "web", "image": "nginx"}]}}),
    );
    assert_eq!(s, 201, "{v}");
    let r = w.run(
        &[
            "roll",
            "spec.toml",
            "--auto-approve",
            "--node-timeout",
            "8s",
        ],
        1,
    );
    assert!(
        r.stderr.contains("PodDisruptionBudget: default/web")
            || r.stderr
                .contains("refused by PodDisruptionBudget default/web"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("not moved after 8s"), "{}", r.stderr);
    assert!(r.stderr.contains("Run `eksnet roll` again"), "{}", r.stderr);
}

/// A cluster whose only node is the one of the self-managed group `solo` (max 2), running 2
/// web pods under a budget of minAvailable 1, with the spec applied; and that node's name.
async fn solo_world() -> (World, BTreeSet<String>) {
    let w = World::new(ExistingClusterOptions {
        nodegroup: None,
        ..ExistingClusterOptions::default()
    })
    .await;
    w.self_managed_group("solo", 1).await;
    w.wait("1 Ready node", || w.ready_nodes().len() == 1);
    let before = w.ready_nodes();
    w.workload(2, json!({"minAvailable": 1}));
    w.wait("2 web pods running", || w.running_web() >= 2);
    w.write_spec();
    w.run(&["apply", "spec.toml", "--auto-approve"], 0);
    (w, before)
}

/// A group of one node, with room for one more, and nowhere else for its pods: drained first,
/// its pods would have nowhere to go, so `--no-surge` is refused. By default the group is
/// raised by one, the new node is Ready before the drain, and the old instance ends with the
/// group lowered again (EKS's own nodegroup update does the same, its "surge").
#[tokio::test(flavor = "multi_thread")]
async fn a_one_node_group_rolls_by_adding_its_replacement_first() {
    let (w, before) = solo_world().await;

    let refused = w.run(&["roll", "spec.toml", "--auto-approve", "--no-surge"], 1);
    assert!(
        refused.stderr.contains("1 schedulable node(s) and 1 would be drained at once before a replacement comes (--no-surge was given)"),
        "{}",
        refused.stderr
    );

    let aws = existing_cluster::clients(&w.sandbox).await;
    let desired = || async {
        aws.autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names("solo")
            .send()
            .await
            .expect("DescribeAutoScalingGroups")
            .auto_scaling_groups()
            .first()
            .and_then(|g| g.desired_capacity())
    };
    assert_eq!(desired().await, Some(1));
    // Watches the nodes: how many were Ready when the old one was first seen cordoned.
    let old = before.iter().next().cloned().expect("the node");
    let nodes_stop = Arc::new(AtomicBool::new(false));
    let nodes_watch = {
        let stop = nodes_stop.clone();
        let url = addr(&w.sandbox.kube_url);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (status, text) = http(&url, "GET", "/api/v1/nodes", "");
                if status == 200 {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let items = v["items"].as_array().cloned().unwrap_or_default();
                    let cordoned = items.iter().any(|n| {
                        n["metadata"]["name"] == old.as_str() && n["spec"]["unschedulable"] == true
                    });
                    if cordoned {
                        let ready = items
                            .iter()
                            .filter(|n| {
                                n["status"]["conditions"].as_array().is_some_and(|c| {
                                    c.iter()
                                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                                })
                            })
                            .count();
                        // Once the drain has evicted the web pods, a pod bound to the node
                        // late, as by a scheduler whose view predates the cordon.
                        while !stop.load(Ordering::SeqCst) {
                            let (_, text) =
                                http(&url, "GET", "/api/v1/namespaces/default/pods", "");
                            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                            let left = v["items"].as_array().into_iter().flatten().any(|p| {
                                p["metadata"]["labels"]["app"] == "web"
                                    && p["spec"]["nodeName"] == old.as_str()
                            });
                            if !left {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        let late = json!({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "late", "namespace": "default",
                                "labels": {"app": "late"}},
                            "spec": {"nodeName": old, "containers": [{"name": "c", "image": "nginx"}]}});
                        http(
                            &url,
                            "POST",
                            "/api/v1/namespaces/default/pods",
                            &late.to_string(),
                        );
                        return Some(ready);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            None
        })
    };
    let (stop, fewest) = watcher(addr(&w.sandbox.kube_url));
    let roll = w.run(&["roll", "spec.toml", "--auto-approve"], 0);
    stop.store(true, Ordering::SeqCst);
    nodes_stop.store(true, Ordering::SeqCst);
    let (fewest, seen) = fewest.join().expect("watcher");
    let ready_at_cordon = nodes_watch.join().expect("node watcher");
    assert_eq!(
        ready_at_cordon,
        Some(2),
        "the old node was cordoned before its replacement was Ready\n{}",
        roll.stderr
    );
    assert!(
        roll.stderr
            .contains("solo desired capacity 1 → 2, its replacement first"),
        "{}",
        roll.stderr
    );
    assert!(
        fewest >= 1,
        "the budget (minAvailable 1) was broken: {fewest} healthy web pods at one point: {seen:#?}\n{}",
        roll.stderr
    );
    // The pod bound to the old node after its drain was evicted too, not lost with the
    // instance.
    let (s, log) = http(&addr(&w.sandbox.kube_url), "GET", "/__fake/requests", "");
    assert_eq!(s, 200, "request log: {log}");
    let log: Value = serde_json::from_str(&log).unwrap_or(Value::Null);
    assert!(
        log.as_array().into_iter().flatten().any(|e| {
            e["method"] == "POST"
                && e["path"] == "/api/v1/namespaces/default/pods/late/eviction"
                && e["user_agent"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("eksnet/"))
        }),
        "the late pod was not evicted\n{}",
        roll.stderr
    );
    // The group is back at one.
    assert_eq!(desired().await, Some(1), "the surge was not taken back");
    w.wait("1 Ready node, a new one", || {
        let now = w.ready_nodes();
        now.len() == 1 && now.is_disjoint(&before)
    });
    w.wait("2 web pods running", || w.running_web() >= 2);
    for p in w.list("/api/v1/namespaces/default/pods") {
        if p["metadata"]["labels"]["app"] != "web" {
            continue;
        }
        let ip = p["status"]["podIP"].as_str().unwrap_or_default();
        assert!(in_block(ip), "pod {} has {ip}", p["metadata"]["name"]);
    }
    w.run(&["verify", "spec.toml"], 0);
}

/// A roll killed just as it raises a group (before or after the call lands), then run again:
/// the group is raised once in all (its max size, 2, would refuse a second raise) and lowered
/// back.
#[tokio::test(flavor = "multi_thread")]
async fn a_surge_killed_midway_is_raised_once_and_taken_back() {
    let (w, before) = solo_world().await;

    w.roll_killed_at("its replacement first");
    w.free_stale_lock();
    let r = w.run(&["roll", "spec.toml", "--auto-approve"], 0);
    assert!(r.stderr.contains("resumed"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("its replacement first"),
        "raised again: {}",
        r.stderr
    );

    let aws = existing_cluster::clients(&w.sandbox).await;
    let groups = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("solo")
        .send()
        .await
        .expect("DescribeAutoScalingGroups");
    let group = groups.auto_scaling_groups().first().expect("the group");
    assert_eq!(
        group.desired_capacity(),
        Some(1),
        "the surge was not taken back"
    );
    assert_eq!(group.instances().len(), 1, "{:?}", group.instances());
    w.wait("1 Ready node, a new one", || {
        let now = w.ready_nodes();
        now.len() == 1 && now.is_disjoint(&before)
    });
    w.run(&["verify", "spec.toml"], 0);
}
