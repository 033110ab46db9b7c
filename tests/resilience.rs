//! Resilience against moto through the AWS fault proxy (`tools/aws-fault-proxy`), with the
//! fake Kubernetes API server for the tutorial's ENIConfigs and aws-node settings: a crash
//! right after every mutating AWS request and after every Kubernetes write, throttling,
//! transitional states and IAM propagation, a branch that fails for good, two commands racing
//! for the lock, and destroy concurrency. Every outcome is checked behind eksnet's back: AWS
//! through the SDK talking to moto directly, Kubernetes through the fake server, plus the
//! SQLite state and the proxy's request records where it matters — never through eksnet's own
//! report.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use common::*;
use eksnet::cloud::aws::AwsClients;
use eksnet::state::{LocalStore, ResourceStatus, StateSnapshot};
use proxy::Proxy;
use serde_json::{json, Value};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

const SPEC: &str = "examples/custom-networking.toml";
const STATE: &str = "state/custom-networking.db";
const STACK: &str = "my-eks-custom-networking-vpc";
const CLUSTER: &str = "my-custom-networking-cluster";
const CLUSTER_ROLE: &str = "myCustomNetworkingAmazonEKSClusterRole";
const NODE_ROLE: &str = "myCustomNetworkingAmazonEKSNodeRole";
const POD_CIDRS: [&str; 2] = ["192.168.1.0/27", "192.168.1.32/27"];
/// Resources of the example: stack, block, 2 pod subnets, 2 roles, cluster, aws-node settings,
/// 2 ENIConfigs, nodegroup.
const EXAMPLE_RESOURCES: usize = 11;
const AWS_NODE: &str = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node";
const ENICONFIGS: &str = "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs";

/// moto behind a fresh proxy that fills in the EKS cluster fields moto leaves out (the
/// ENIConfigs need the cluster security group), the fake Kubernetes API server, and SDK
/// clients talking to moto directly.
struct World {
    _guard: MotoGuard,
    proxy: Proxy,
    kube: &'static FakeKube,
    aws: AwsClients,
}

async fn world() -> World {
    let (guard, moto_url, kube) = moto_and_kube();
    let proxy = Proxy::start(&moto_url);
    // The data plane runs throughout: the nodegroups' instances join as Nodes, the CNI gives
    // CoreDNS its IPs, a deleted nodegroup drains, and its ENIs stay behind for a second (the
    // pod subnets' deletes meet them), so every crash and recovery below happens in a world
    // that reacts. A blocked drain is forced after a second, not EKS's minutes.
    proxy.config(json!({
        "eks_cluster_fields": true,
        "kube_url": kube.url,
        "data_plane": true,
        "eni_cleanup_ms": 1000,
        "drain_force_ms": 1000,
    }));
    let aws = sdk(&moto_url).await;
    World {
        _guard: guard,
        proxy,
        kube,
        aws,
    }
}

impl World {
    /// eksnet in `dir`, through the proxy, with the fake cluster's kubeconfig.
    fn eksnet(&self, dir: &Path) -> Command {
        let mut c = eksnet(&self.proxy.url, dir);
        c.env("EKSNET_KUBECONFIG", &self.kube.kubeconfig);
        // The fake's context is not named after the cluster and its server is not the
        // endpoint moto reports, so it is named.
        c.env("EKSNET_KUBE_CONTEXT", "fake");
        c
    }

    /// moto, the proxy's windows and counters, and the fake cluster back to their start.
    fn reset(&self) {
        self.proxy.reset();
        let (status, body) = http(
            self.kube.url.trim_start_matches("http://"),
            "POST",
            "/__fake/reset",
            "",
        );
        assert_eq!(status, 200, "fake kube reset: {body}");
    }

    fn plan_is_clean(&self, d: &Path, ctx: &str) {
        let r = run(self.eksnet(d).args(["plan", SPEC, "--detailed-exitcode"]));
        assert_eq!(
            r.code, 0,
            "{ctx}: plan after convergence must show no changes\n--- stdout\n{}\n--- stderr\n{}",
            r.stdout, r.stderr
        );
    }

    /// Everything in the example exists exactly once with the right settings: AWS through the
    /// SDK (moto directly), Kubernetes from the fake server. `nodegroups` are the nodegroup
    /// names the spec declares.
    async fn assert_converged(&self, nodegroups: &[&str], ctx: &str) {
        use aws_sdk_ec2::types::Filter;
        let aws = &self.aws;
        let stacks = aws
            .cloudformation
            .describe_stacks()
            .send()
            .await
            .expect("stacks");
        let live: Vec<_> = stacks
            .stacks()
            .iter()
            .filter(|s| {
                s.stack_name() == Some(STACK)
                    && s.stack_status().map(|x| x.as_str()) != Some("DELETE_COMPLETE")
            })
            .collect();
        assert_eq!(live.len(), 1, "{ctx}: exactly one stack {STACK}");
        assert_eq!(
            live[0].stack_status().map(|s| s.as_str()),
            Some("CREATE_COMPLETE"),
            "{ctx}"
        );
        let res = aws
            .cloudformation
            .describe_stack_resources()
            .stack_name(STACK)
            .send()
            .await
            .expect("stack resources");
        let vpc_id = res
            .stack_resources()
            .iter()
            .find(|r| r.logical_resource_id() == Some("VPC"))
            .and_then(|r| r.physical_resource_id())
            .expect("stack VPC")
            .to_string();
        let vpcs = aws
            .ec2
            .describe_vpcs()
            .filters(
                Filter::builder()
                    .name("cidr-block")
                    .values("192.168.0.0/24")
                    .build(),
            )
            .send()
            .await
            .expect("vpcs");
        assert_eq!(
            vpcs.vpcs().len(),
            1,
            "{ctx}: exactly one VPC 192.168.0.0/24"
        );
        let vpc = aws
            .ec2
            .describe_vpcs()
            .vpc_ids(&vpc_id)
            .send()
            .await
            .expect("vpc");
        let blocks: Vec<_> = vpc.vpcs()[0]
            .cidr_block_association_set()
            .iter()
            .filter(|a| {
                a.cidr_block() == Some("192.168.1.0/24")
                    && a.cidr_block_state()
                        .and_then(|s| s.state())
                        .map(|s| s.as_str())
                        != Some("disassociated")
            })
            .collect();
        assert_eq!(
            blocks.len(),
            1,
            "{ctx}: exactly one 192.168.1.0/24 association on {vpc_id}"
        );
        assert_eq!(
            blocks[0]
                .cidr_block_state()
                .and_then(|s| s.state())
                .map(|s| s.as_str()),
            Some("associated"),
            "{ctx}"
        );
        let mut pod_subnets = Vec::new();
        for cidr in POD_CIDRS {
            let s = aws
                .ec2
                .describe_subnets()
                .filters(Filter::builder().name("cidr-block").values(cidr).build())
                .send()
                .await
                .expect("subnets");
            assert_eq!(s.subnets().len(), 1, "{ctx}: exactly one subnet {cidr}");
            assert_eq!(
                s.subnets()[0].vpc_id(),
                Some(vpc_id.as_str()),
                "{ctx}: {cidr} in the stack's VPC"
            );
            pod_subnets.push(s.subnets()[0].clone());
        }
        let roles = aws.iam.list_roles().send().await.expect("roles");
        for (role, policies) in [
            (CLUSTER_ROLE, vec!["AmazonEKSClusterPolicy"]),
            (
                NODE_ROLE,
                vec![
                    "AmazonEC2ContainerRegistryReadOnly",
                    "AmazonEKSWorkerNodePolicy",
                    "AmazonEKS_CNI_Policy",
                ],
            ),
        ] {
            assert_eq!(
                roles
                    .roles()
                    .iter()
                    .filter(|r| r.role_name() == role)
                    .count(),
                1,
                "{ctx}: one role {role}"
            );
            let attached = aws
                .iam
                .list_attached_role_policies()
                .role_name(role)
                .send()
                .await
                .expect("policies");
            let mut names: Vec<&str> = attached
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_name())
                .collect();
            names.sort();
            assert_eq!(names, policies, "{ctx}: policies of {role}");
        }
        let clusters = aws.eks.list_clusters().send().await.expect("clusters");
        assert_eq!(clusters.clusters(), [CLUSTER], "{ctx}: one cluster");
        let c = aws
            .eks
            .describe_cluster()
            .name(CLUSTER)
            .send()
            .await
            .expect("cluster");
        assert!(
            c.cluster()
                .and_then(|c| c.role_arn())
                .is_some_and(|a| a.ends_with(&format!(":role/{CLUSTER_ROLE}"))),
            "{ctx}: cluster role"
        );
        let ngs = aws
            .eks
            .list_nodegroups()
            .cluster_name(CLUSTER)
            .send()
            .await
            .expect("nodegroups");
        let mut got: Vec<&str> = ngs.nodegroups().iter().map(String::as_str).collect();
        got.sort();
        let mut want = nodegroups.to_vec();
        want.sort();
        assert_eq!(got, want, "{ctx}: nodegroups");

        // Kubernetes: one ENIConfig per pod subnet, named after its AZ; the two CNI settings
        // on aws-node exactly once each (a re-run must not append them again).
        let enis = self.kube.get(ENICONFIGS);
        let mut found: Vec<(String, String)> = enis["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| {
                        (
                            o["metadata"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                            o["spec"]["subnet"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        let mut expected: Vec<(String, String)> = pod_subnets
            .iter()
            .map(|s| {
                (
                    s.availability_zone().unwrap_or_default().to_string(),
                    s.subnet_id().unwrap_or_default().to_string(),
                )
            })
            .collect();
        expected.sort();
        assert_eq!(found, expected, "{ctx}: ENIConfigs");
        let ds = self.kube.get(AWS_NODE);
        let env = ds["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (name, value) in [
            ("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true"),
            ("ENI_CONFIG_LABEL_DEF", "topology.kubernetes.io/zone"),
        ] {
            let entries: Vec<&Value> = env.iter().filter(|e| e["name"] == name).collect();
            assert_eq!(
                entries.len(),
                1,
                "{ctx}: {name} set once on aws-node: {entries:?}"
            );
            assert_eq!(entries[0]["value"], value, "{ctx}: {name}");
        }
    }

    /// Nothing of the example is left (but the VPC moto's DeleteStack keeps, see e2e).
    async fn assert_destroyed(&self, ctx: &str) {
        let aws = &self.aws;
        assert!(
            aws.cloudformation
                .describe_stacks()
                .stack_name(STACK)
                .send()
                .await
                .map(|o| o
                    .stacks()
                    .iter()
                    .all(|s| s.stack_status().map(|x| x.as_str()) == Some("DELETE_COMPLETE")))
                .unwrap_or(true),
            "{ctx}: stack gone"
        );
        assert!(
            aws.eks
                .list_clusters()
                .send()
                .await
                .expect("clusters")
                .clusters()
                .is_empty(),
            "{ctx}: cluster gone"
        );
        for role in [CLUSTER_ROLE, NODE_ROLE] {
            assert!(
                aws.iam.get_role().role_name(role).send().await.is_err(),
                "{ctx}: {role} gone"
            );
        }
        let f = aws_sdk_ec2::types::Filter::builder()
            .name("cidr-block")
            .values(POD_CIDRS[0])
            .values(POD_CIDRS[1])
            .build();
        assert!(
            aws.ec2
                .describe_subnets()
                .filters(f)
                .send()
                .await
                .expect("subnets")
                .subnets()
                .is_empty(),
            "{ctx}: pod subnets gone"
        );
        let enis = self.kube.get(ENICONFIGS);
        assert!(
            enis["items"].as_array().is_none_or(|a| a.is_empty()),
            "{ctx}: ENIConfigs gone: {enis}"
        );
        // aws-node as the cluster had it before eksnet: every original entry with its original
        // value, in place, and the entries eksnet added removed again.
        let ds = self.kube.get(AWS_NODE);
        assert_eq!(
            aws_node_env(&ds),
            aws_node_env(&seed_aws_node()),
            "{ctx}: aws-node env restored to the seed's"
        );
        assert!(
            ds["metadata"]["annotations"][PREVIOUS_ENV_ANNOTATION].is_null(),
            "{ctx}: eksnet's record of the originals removed: {}",
            ds["metadata"]
        );
    }
}

/// eksnet's copy of the original aws-node values on the DaemonSet itself.
const PREVIOUS_ENV_ANNOTATION: &str = "eksnet.io/previous-env";

/// The aws-node DaemonSet the fake API server starts with (and returns to on reset): its
/// built-in seed, read from the file rather than from the server so that a server already
/// changed by a run cannot pass for the original.
fn seed_aws_node() -> Value {
    let seed: Value = serde_json::from_str(include_str!(
        "../tools/fake-kube-apiserver/seed/default.json"
    ))
    .expect("fake API server seed is JSON");
    seed["objects"]
        .as_array()
        .and_then(|objs| {
            objs.iter().find(|o| {
                o["kind"] == "DaemonSet"
                    && o["metadata"]["namespace"] == "kube-system"
                    && o["metadata"]["name"] == "aws-node"
            })
        })
        .cloned()
        .expect("aws-node DaemonSet in the seed")
}

/// The env list of the `aws-node` container, entries as the server stores them.
fn aws_node_env(ds: &Value) -> Vec<Value> {
    let containers = ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    containers
        .iter()
        .find(|c| c["name"] == "aws-node")
        .and_then(|c| c["env"].as_array().cloned())
        .unwrap_or_default()
}

/// The Kubernetes writes (anything but GET, no dry runs) in a fake API server request log, as
/// (method, path): what the fake's kill hook counts.
fn kube_writes(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .filter(|r| {
            r["method"] != "GET"
                && !r["query"].as_str().is_some_and(|q| q.contains("dryRun"))
                // eksnet's own, not the data plane's kubelets and controllers.
                && r["user_agent"].as_str().is_some_and(|ua| ua.starts_with("eksnet/"))
        })
        .map(|r| {
            let field = |f: &str| r[f].as_str().unwrap_or("?").to_string();
            (field("method"), field("path"))
        })
        .collect()
}

fn edit_spec(dir: &Path, f: impl FnOnce(String) -> String) {
    let p = dir.join(SPEC);
    let text = std::fs::read_to_string(&p).expect("read spec");
    std::fs::write(&p, f(text)).expect("write spec");
}

/// A nodegroup like the example's `nodegroup.main`, under another address and name.
fn extra_nodegroup(addr: &str, name: &str) -> String {
    format!(
        r#"
[nodegroup.{addr}]
cluster_name = "${{cluster.main.name}}"
name = "{name}"
node_role_arn = "${{iam_role.node.arn}}"
subnet_ids = ["${{vpc.main.subnets.PrivateSubnet01.id}}", "${{vpc.main.subnets.PrivateSubnet02.id}}"]
instance_types = ["t3.medium"]
"#
    )
}

fn snapshot(dir: &Path) -> StateSnapshot {
    snapshot_of(dir, STATE)
}

fn snapshot_of(dir: &Path, state: &str) -> StateSnapshot {
    LocalStore::open(&dir.join(state))
        .expect("open state")
        .snapshot()
        .expect("state snapshot")
}

fn assert_all_present(d: &Path, expected: usize, ctx: &str) {
    assert_all_present_in(d, STATE, expected, ctx)
}

fn assert_all_present_in(d: &Path, state: &str, expected: usize, ctx: &str) {
    let snap = snapshot_of(d, state);
    assert_eq!(
        snap.resources.len(),
        expected,
        "{ctx}: state rows {:?}",
        snap.resources.keys().collect::<Vec<_>>()
    );
    for (addr, r) in &snap.resources {
        assert_eq!(
            r.status,
            ResourceStatus::Present,
            "{ctx}: {addr} in the state"
        );
        assert!(r.cloud_id.is_some(), "{ctx}: {addr} has a cloud id");
    }
}

/// The operations of the mutating requests the proxy has seen since its stats were last
/// reset, in the order they arrived: one undisturbed run of the example.
fn mutating_ops(w: &World) -> Vec<String> {
    let order: Vec<String> = w
        .proxy
        .stats()
        .requests()
        .into_iter()
        .filter(|r| r.mutating)
        .map(|r| r.op)
        .collect();
    assert!(
        (8..=40).contains(&order.len()),
        "unexpected mutating request count {}: {order:?}",
        order.len()
    );
    order
}

/// Every mutating request of one undisturbed run as a crash point: (operation, n) for the
/// n-th request of that operation. Concurrent requests arrive in a different order on each
/// run; naming the point by operation makes each request one, whatever the order.
fn crash_points(order: &[String]) -> Vec<(String, u64)> {
    let mut seen: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    order
        .iter()
        .map(|op| {
            let n = seen.entry(op.as_str()).or_default();
            *n += 1;
            (op.clone(), *n)
        })
        .collect()
}

/// Runs `command` with the proxy's kill hook armed for the n-th `op` (armed before eksnet
/// starts; the count restarts when the hook is armed), and checks eksnet died right after
/// moto answered that request.
fn run_killed_at(w: &World, d: &Path, command: &str, op: &str, n: u64, ctx: &str) {
    run_killed_at_spec(w, d, SPEC, command, op, n, ctx)
}

/// `run_killed_at` for another spec of the examples.
fn run_killed_at_spec(w: &World, d: &Path, spec: &str, command: &str, op: &str, n: u64, ctx: &str) {
    let pid_file = d.join("eksnet.pid");
    w.proxy
        .config(json!({"kill_after_mutating": n, "kill_op": op, "kill_pid_file": pid_file}));
    let out = with_pid_file(
        w.eksnet(d).args([command, spec, "--auto-approve"]),
        &pid_file,
    )
    .stdin(Stdio::null())
    .output()
    .expect("run eksnet");
    let stats = w.proxy.stats();
    let killed = stats.0["kill"].clone();
    // The hook's own report, not the request list: the killed request's record may not be
    // written yet (the proxy closes it when it notices the client is gone).
    assert_eq!(killed["op"].as_str(), Some(op), "{ctx}: {killed}");
    assert_killed_by_hook(&out, &pid_file, &killed, ctx);
    w.proxy
        .config(json!({"kill_after_mutating": null, "kill_op": null, "kill_pid_file": null}));
    // Requests the dead run had sent alongside the killed one (a CreateStack beside a
    // CreateRole) are still being carried out by moto; the next run starts after them.
    w.proxy.wait_idle();
}

/// Checks that eksnet died of the SIGKILL the hook sent, to the pid the wrapper wrote.
fn assert_killed_by_hook(out: &std::process::Output, pid_file: &Path, hook: &Value, ctx: &str) {
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{ctx}: eksnet must die of SIGKILL (status {:?}, hook {hook})\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: i64 = std::fs::read_to_string(pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(hook["killed"], true, "{ctx}: {hook}");
    assert_eq!(hook["pid"].as_i64(), Some(pid), "{ctx}: {hook}");
}

/// After a kill: running `command` again must be refused because of the dead run's lock,
/// reported as stale with its id; that lock is then freed with `force-unlock`.
fn free_stale_lock(w: &World, d: &Path, command: &str, ctx: &str) {
    free_stale_lock_of(w, d, SPEC, STATE, command, ctx)
}

/// `free_stale_lock` for another spec of the examples and its state.
fn free_stale_lock_of(w: &World, d: &Path, spec: &str, state: &str, command: &str, ctx: &str) {
    let locked = run(w.eksnet(d).args([command, spec, "--auto-approve"]));
    assert_eq!(
        locked.code, 1,
        "{ctx}: the lock outlives the kill\n{}",
        locked.stderr
    );
    assert!(
        locked.stderr.contains("is locked by") && locked.stderr.contains("stale lock"),
        "{ctx}: {}",
        locked.stderr
    );
    let id =
        lock_id(&locked.stderr).unwrap_or_else(|| panic!("{ctx}: no lock id in {}", locked.stderr));
    run_ok(w.eksnet(d).args(["force-unlock", &id, "--state", state]), 0);
}

/// After a kill during apply: the stale lock is freed and the apply run again, which must
/// succeed and converge: exactly the example's resources in AWS and in the state, and a clean
/// plan.
async fn recover_after_kill(w: &World, d: &Path, ctx: &str) {
    free_stale_lock(w, d, "apply", ctx);
    let again = run(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]));
    assert_eq!(
        again.code, 0,
        "{ctx}: re-apply\n--- stdout\n{}\n--- stderr\n{}",
        again.stdout, again.stderr
    );
    let adopted: Vec<&str> = again
        .stdout
        .lines()
        .filter(|l| {
            l.contains("found in AWS after an interrupted run") || l.contains("updated in place")
        })
        .map(str::trim)
        .collect();
    eprintln!(
        "  re-apply: {} {adopted:?}",
        again
            .stdout
            .lines()
            .find(|l| l.starts_with("Plan:"))
            .unwrap_or("no plan line")
    );
    w.assert_converged(&["my-nodegroup"], ctx).await;
    w.plan_is_clean(d, ctx);
    assert_all_present(d, EXAMPLE_RESOURCES, ctx);
}

/// After a kill during destroy: the stale lock is freed and the destroy run again, which must
/// succeed and leave nothing: no resource of the example in AWS or Kubernetes, aws-node as
/// the seed had it (see `assert_destroyed`), an empty state.
async fn destroy_again_finishes(w: &World, d: &Path, ctx: &str) {
    free_stale_lock(w, d, "destroy", ctx);
    let again = run(w.eksnet(d).args(["destroy", SPEC, "--auto-approve"]));
    assert_eq!(
        again.code, 0,
        "{ctx}: destroy again\n--- stdout\n{}\n--- stderr\n{}",
        again.stdout, again.stderr
    );
    w.assert_destroyed(ctx).await;
    assert!(
        snapshot(d).resources.is_empty(),
        "{ctx}: state emptied: {:?}",
        snapshot(d).resources.keys().collect::<Vec<_>>()
    );
}

/// The id in eksnet's hint line `... run `eksnet force-unlock <ID> --state <PATH>``.
fn lock_id(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .find(|l| l.contains("eksnet force-unlock "))?;
    let rest = line.split("eksnet force-unlock ").nth(1)?;
    rest.split_whitespace()
        .next()
        .map(|s| s.trim_matches('`').to_string())
}

/// The same eksnet command, started through `sh` that first writes its own pid to `pid_file`
/// and then `exec`s eksnet (same pid). The file therefore exists before eksnet sends its first
/// request, so the proxy's kill hook (which reads it when it fires) can never miss it.
fn with_pid_file(cmd: &Command, pid_file: &Path) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"echo $$ > "$0"; exec "$@""#)
        .arg(pid_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        sh.current_dir(d);
    }
    sh
}

fn count_lines(text: &str, line: &str) -> usize {
    text.lines().filter(|l| l.trim() == line).count()
}

/// 1. SIGKILL right after moto answered each mutating AWS request of an apply (every request
///    of an undisturbed run, named by operation and rank): the next apply (after freeing the
///    stale lock) converges with nothing created twice.
#[tokio::test]
async fn crash_after_each_mutating_request_then_reapply_converges() {
    let w = world().await;

    // K: mutating AWS requests of one undisturbed apply.
    let dir = example_dir();
    run_ok(
        w.eksnet(dir.path()).args(["apply", SPEC, "--auto-approve"]),
        0,
    );
    let order = mutating_ops(&w);
    let k_total = order.len();
    drop(dir);

    for (i, (op, n)) in crash_points(&order).into_iter().enumerate() {
        w.reset();
        let dir = example_dir();
        let d = dir.path();
        let ctx = format!(
            "killed after mutating request {}/{k_total} (#{n} {op})",
            i + 1
        );
        eprintln!("{ctx}");
        run_killed_at(&w, d, "apply", &op, n, &ctx);
        // The dead apply left its lock (taken before any request).
        recover_after_kill(&w, d, &ctx).await;
    }
}

/// 1b. SIGKILL right after the fake API server stored a Kubernetes write of an apply (the
///     aws-node patch, each ENIConfig server-side apply), before eksnet saw the answer and so
///     before it recorded anything about it: the next apply (after freeing the stale lock)
///     converges, and destroy still puts aws-node back exactly as the cluster had it — the
///     originals eksnet keeps must be the seed's values, not the ones it wrote itself.
///
///     eksnet sends these writes concurrently, so they reach the server in a different order
///     on each run. Killing after the k-th write for every k covers every number of writes
///     done; killing after each particular write (the hook's `path` filter) makes sure each one
///     is a crash point, the aws-node patch included, whatever the order.
#[tokio::test]
async fn crash_after_each_kubernetes_write_then_reapply_converges() {
    let w = world().await;
    let seed_env = aws_node_env(&seed_aws_node());
    for name in ["AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "ENI_CONFIG_LABEL_DEF"] {
        // Otherwise "absent again after destroy" would check nothing.
        assert!(
            seed_env.iter().all(|e| e["name"] != name),
            "the seed's aws-node must not set {name} already"
        );
    }

    // W: Kubernetes writes of one undisturbed apply.
    let dir = example_dir();
    run_ok(
        w.eksnet(dir.path()).args(["apply", SPEC, "--auto-approve"]),
        0,
    );
    let writes = kube_writes(&w.kube.requests());
    let w_total = writes.len();
    let patches = writes
        .iter()
        .filter(|(m, p)| m == "PATCH" && p == AWS_NODE)
        .count();
    let eni_writes = writes
        .iter()
        .filter(|(_, p)| p.starts_with(&format!("{ENICONFIGS}/")))
        .count();
    assert!(
        (3..=12).contains(&w_total) && patches >= 1 && eni_writes >= 2,
        "unexpected Kubernetes writes (one aws-node patch and two ENIConfigs at least): {writes:?}"
    );
    drop(dir);

    // (after_writes, path filter): every count of writes, then every write by its path (the
    // n-th write to a path when one path is written more than once).
    let mut crashes: Vec<(usize, Option<String>)> = (1..=w_total).map(|k| (k, None)).collect();
    for (i, (_, path)) in writes.iter().enumerate() {
        let nth = writes[..=i].iter().filter(|(_, p)| p == path).count();
        crashes.push((nth, Some(path.clone())));
    }
    let started = std::time::Instant::now();
    let n = crashes.len();
    for (after_writes, path) in crashes {
        let label = match &path {
            None => format!("Kubernetes write {after_writes}/{w_total}"),
            Some(p) => format!("Kubernetes write {after_writes} to {p}"),
        };
        crash_after_kube_write_and_recover(&w, &seed_env, after_writes, path.as_deref(), &label)
            .await;
    }
    eprintln!(
        "{n} crash points in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// One crash of `crash_after_each_kubernetes_write_then_reapply_converges`: a fresh world, an
/// apply killed by the fake API server's hook, recovery, checks, destroy and its checks.
async fn crash_after_kube_write_and_recover(
    w: &World,
    seed_env: &[Value],
    after_writes: usize,
    path: Option<&str>,
    label: &str,
) {
    w.reset();
    assert_eq!(
        aws_node_env(&w.kube.get(AWS_NODE)),
        seed_env,
        "{label}: the reset fake starts from its seed"
    );
    let dir = example_dir();
    let d = dir.path();
    let pid_file = d.join("eksnet.pid");
    // Armed before eksnet starts; the fake counts writes from the moment it is armed.
    let armed = w.kube.arm_kill(after_writes, path, &pid_file);
    assert_eq!(armed["armed"], true, "{label}: {armed}");
    let out = with_pid_file(
        w.eksnet(d).args(["apply", SPEC, "--auto-approve"]),
        &pid_file,
    )
    .stdin(Stdio::null())
    .output()
    .expect("run eksnet");
    let hook = w.kube.kill_hook();
    let log = w.kube.requests();
    let killed_after = log.iter().find(|r| r["seq"] == hook["after_seq"]);
    let write = killed_after
        .map(|r| format!("{} {} -> {}", r["method"], r["path"], r["code"]))
        .unwrap_or_default();
    let ctx = format!("killed after {label} ({write})");
    eprintln!("{ctx}");
    assert_killed_by_hook(&out, &pid_file, &hook, &ctx);
    if let Some(p) = path {
        assert_eq!(
            killed_after.map(|r| r["path"].clone()),
            Some(json!(p)),
            "{ctx}: {hook}"
        );
    }
    // The crash point is "after a write took effect": the write itself must have worked.
    assert!(
        killed_after.is_some_and(|r| r["code"].as_u64().is_some_and(|c| (200..300).contains(&c))),
        "{ctx}: the write the kill followed was stored: {hook}"
    );
    w.kube.disarm_kill();
    w.proxy.wait_idle();

    // The dead apply left its lock.
    recover_after_kill(w, d, &ctx).await;

    // Kubernetes, through the fake server: exactly the example's two ENIConfigs (one per AZ of
    // its pod subnets), and aws-node with the spec's two settings added to the original
    // entries, which are all still there, unchanged and once each.
    let enis = w.kube.get(ENICONFIGS);
    let mut names: Vec<&str> = enis["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    assert_eq!(names, ["us-west-2a", "us-west-2b"], "{ctx}: ENIConfigs");
    let mut expected_env = seed_env.to_vec();
    expected_env.push(json!({"name": "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "value": "true"}));
    expected_env
        .push(json!({"name": "ENI_CONFIG_LABEL_DEF", "value": "topology.kubernetes.io/zone"}));
    // Compared as multisets: new entries may go anywhere, duplicates must not appear.
    let sorted = |env: &[Value]| {
        let mut v: Vec<String> = env.iter().map(Value::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&aws_node_env(&w.kube.get(AWS_NODE))),
        sorted(&expected_env),
        "{ctx}: aws-node env"
    );

    // Destroy must put aws-node back as the seed had it: the two settings absent again.
    let destroyed = run(w.eksnet(d).args(["destroy", SPEC, "--auto-approve"]));
    assert_eq!(
        destroyed.code, 0,
        "{ctx}: destroy\n--- stdout\n{}\n--- stderr\n{}",
        destroyed.stdout, destroyed.stderr
    );
    w.assert_destroyed(&ctx).await;
    assert!(snapshot(d).resources.is_empty(), "{ctx}: state emptied");
}

/// 1c. SIGKILL right after moto answered each mutating request of a destroy (named as in 1):
///     the next destroy (after freeing the stale lock) finishes the job — nothing of the
///     example left in AWS or Kubernetes, aws-node back as the seed had it, the state empty.
#[tokio::test]
async fn crash_after_each_mutating_request_of_destroy_then_destroy_again_finishes() {
    let w = world().await;
    let apply = |d: &Path| run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);

    // K: mutating AWS requests of one undisturbed destroy.
    let dir = example_dir();
    apply(dir.path());
    w.proxy.reset_stats();
    run_ok(
        w.eksnet(dir.path())
            .args(["destroy", SPEC, "--auto-approve"]),
        0,
    );
    let order = mutating_ops(&w);
    let k_total = order.len();
    drop(dir);

    for (i, (op, n)) in crash_points(&order).into_iter().enumerate() {
        w.reset();
        let dir = example_dir();
        let d = dir.path();
        apply(d);
        let ctx = format!(
            "destroy killed after mutating request {}/{k_total} (#{n} {op})",
            i + 1
        );
        eprintln!("{ctx}");
        if n == 1 {
            run_killed_at(&w, d, "destroy", &op, n, &ctx);
        } else if destroy_finished_first(&w, d, &op, n, &ctx) {
            // A retry the reference destroy needed (a DeleteSubnet refused while the CNI's
            // ENIs were still going) and this one did not: it finished instead.
            eprintln!("{ctx}: not needed this time, the destroy finished without it");
            w.assert_destroyed(&ctx).await;
            assert!(snapshot(d).resources.is_empty(), "{ctx}: state emptied");
            continue;
        }
        destroy_again_finishes(&w, d, &ctx).await;
    }
}

/// Runs a destroy with the kill hook armed for the n-th `op` (n > 1, a repeat in the
/// reference run); `true` when the destroy finished without reaching it, else checks it died
/// of the hook as `run_killed_at` does.
fn destroy_finished_first(w: &World, d: &Path, op: &str, n: u64, ctx: &str) -> bool {
    let pid_file = d.join("eksnet.pid");
    w.proxy
        .config(json!({"kill_after_mutating": n, "kill_op": op, "kill_pid_file": pid_file}));
    let out = with_pid_file(
        w.eksnet(d).args(["destroy", SPEC, "--auto-approve"]),
        &pid_file,
    )
    .stdin(Stdio::null())
    .output()
    .expect("run eksnet");
    let killed = w.proxy.stats().0["kill"].clone();
    w.proxy
        .config(json!({"kill_after_mutating": null, "kill_op": null, "kill_pid_file": null}));
    let finished = killed["op"].is_null() && out.status.success();
    if !finished {
        assert_eq!(killed["op"].as_str(), Some(op), "{ctx}: {killed}");
        assert_killed_by_hook(&out, &pid_file, &killed, ctx);
    }
    w.proxy.wait_idle();
    finished
}

/// 1d. SIGKILL right after each Kubernetes write of a destroy (the aws-node restore patch,
///     each ENIConfig delete), named by path so that each one is a crash point whatever the
///     order: the next destroy finishes, and aws-node ends exactly as the seed had it — a
///     restore that was written but not recorded must not be lost or applied wrongly twice.
#[tokio::test]
async fn crash_after_each_kubernetes_write_of_destroy_then_destroy_again_finishes() {
    let w = world().await;
    let apply = |d: &Path| run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);

    // The Kubernetes writes of one undisturbed destroy.
    let dir = example_dir();
    apply(dir.path());
    let before = w.kube.requests().len();
    run_ok(
        w.eksnet(dir.path())
            .args(["destroy", SPEC, "--auto-approve"]),
        0,
    );
    let writes = kube_writes(&w.kube.requests()[before..]);
    assert!(
        writes.iter().any(|(m, p)| m == "PATCH" && p == AWS_NODE)
            && writes
                .iter()
                .filter(|(m, p)| m == "DELETE" && p.starts_with(&format!("{ENICONFIGS}/")))
                .count()
                >= 2,
        "the aws-node restore and two ENIConfig deletes: {writes:?}"
    );
    drop(dir);

    for (i, (method, path)) in writes.iter().enumerate() {
        let nth = writes[..=i].iter().filter(|(_, p)| p == path).count();
        w.reset();
        let dir = example_dir();
        let d = dir.path();
        apply(d);
        let ctx = format!("destroy killed after {method} {path} (#{nth})");
        eprintln!("{ctx}");
        let pid_file = d.join("eksnet.pid");
        w.kube.arm_kill(nth, Some(path), &pid_file);
        let out = with_pid_file(
            w.eksnet(d).args(["destroy", SPEC, "--auto-approve"]),
            &pid_file,
        )
        .stdin(Stdio::null())
        .output()
        .expect("run eksnet");
        let hook = w.kube.kill_hook();
        assert_killed_by_hook(&out, &pid_file, &hook, &ctx);
        w.kube.disarm_kill();
        w.proxy.wait_idle();

        destroy_again_finishes(&w, d, &ctx).await;
    }
}

/// 2. A third of all AWS requests throttled: apply, plan and destroy still succeed.
#[tokio::test]
async fn converges_and_destroys_under_30_percent_throttling() {
    let w = world().await;
    w.proxy
        .config(json!({"throttle_fraction": 0.3, "throttle_seed": 7}));
    let dir = example_dir();
    let d = dir.path();
    let applied = run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);
    assert!(
        applied.stderr.contains(&format!(
            "Apply complete! Resources: {EXAMPLE_RESOURCES} added"
        )),
        "{}",
        applied.stderr
    );
    let throttled = w.proxy.stats().faulted("throttle").len();
    assert!(
        throttled >= 5,
        "the proxy must actually have throttled ({throttled} requests)"
    );
    w.assert_converged(&["my-nodegroup"], "throttled apply")
        .await;
    w.plan_is_clean(d, "throttled plan");
    w.proxy.reset_stats();
    let destroyed = run_ok(w.eksnet(d).args(["destroy", SPEC, "--auto-approve"]), 0);
    assert!(
        destroyed.stderr.contains("Destroy complete!"),
        "{}",
        destroyed.stderr
    );
    assert!(
        !w.proxy.stats().faulted("throttle").is_empty(),
        "destroy was throttled too"
    );
    w.assert_destroyed("throttled destroy").await;
    assert!(snapshot(d).resources.is_empty(), "state emptied");
}

/// 3. CREATING / DELETING / *_IN_PROGRESS windows, a role EKS cannot assume yet, and subnets
///    that refuse deletion twice: both directions wait or retry, say so, and succeed.
#[tokio::test]
async fn waits_through_transitions_iam_propagation_and_dependency_violations() {
    let w = world().await;
    // The IAM window must outlast the stack's creation (1.5 s plus polls and read-back), or the
    // cluster, which waits for the stack, would never meet it: 4 s leaves a 2 s margin on a
    // loaded machine and makes CreateCluster retry for about two seconds.
    w.proxy.config(
        json!({"transition_ms": 1500, "iam_propagation_ms": 4000, "dependency_violation_count": 2}),
    );
    let dir = example_dir();
    let d = dir.path();
    let applied = run_ok(
        w.eksnet(d)
            .env("EKSNET_POLL_MAX_MS", "200")
            .args(["apply", SPEC, "--auto-approve"]),
        0,
    );
    let err = &applied.stderr;
    for line in [
        "vpc.main: still CREATE_IN_PROGRESS",
        "cluster.main: still CREATING",
        "nodegroup.main: still CREATING",
        "cluster.main: retrying (attempt 1): IAM role not assumable yet",
    ] {
        assert!(err.contains(line), "apply stderr lacks {line:?}:\n{err}");
    }
    let stats = w.proxy.stats();
    assert!(
        !stats.faulted("iam_propagation").is_empty(),
        "CreateCluster met the IAM window"
    );
    assert!(
        stats.faulted("transition").len() >= 3,
        "describes saw transitional states"
    );
    w.assert_converged(&["my-nodegroup"], "apply through transitions")
        .await;
    w.plan_is_clean(d, "plan after transitions");

    w.proxy.reset_stats();
    let destroyed = run_ok(
        w.eksnet(d)
            .env("EKSNET_POLL_MAX_MS", "200")
            .args(["destroy", SPEC, "--auto-approve"]),
        0,
    );
    let err = &destroyed.stderr;
    for line in [
        "nodegroup.main: still DELETING",
        "cluster.main: still DELETING",
        "subnet.pod_a: retrying (attempt 1): DeleteSubnet failed: DependencyViolation",
        "subnet.pod_b: retrying (attempt 2): DeleteSubnet failed: DependencyViolation",
    ] {
        assert!(err.contains(line), "destroy stderr lacks {line:?}:\n{err}");
    }
    let stats = w.proxy.stats();
    assert_eq!(
        stats.faulted("dependency_violation").len(),
        4,
        "two refusals per pod subnet"
    );
    assert!(
        stats.faulted("nodegroups_deleting").is_empty(),
        "DeleteCluster waited for the nodegroup"
    );
    w.assert_destroyed("destroy through transitions").await;
}

/// 4. A branch that fails for good (EKS refuses CreateCluster, as an account's policy or
///    quota would: the proxy's `reject_op`, since every shape moto would refuse is now caught
///    by `validate`): exit 1, each dependent reported skipped once, independent branches done
///    and recorded; once the cause is gone, the next apply converges.
#[tokio::test]
async fn failed_branch_skips_dependents_keeps_the_rest_and_recovers() {
    let w = world().await;
    let dir = example_dir();
    let d = dir.path();
    edit_spec(d, |t| t + &extra_nodegroup("extra", "my-nodegroup-extra"));
    w.proxy.config(json!({"reject_op": "CreateCluster"}));
    let failed = run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 1);
    let err = &failed.stderr;
    assert!(
        err.contains(
            "cluster.main: create FAILED: CreateCluster failed: InvalidParameterException"
        ),
        "{err}"
    );
    let dependents = [
        "nodegroup.main",
        "nodegroup.extra",
        "aws_node.main",
        "eni_config.pod_a",
        "eni_config.pod_b",
    ];
    for dep in dependents {
        assert_eq!(
            count_lines(err, &format!("{dep}: skipped because cluster.main failed")),
            1,
            "{dep} reported skipped once:\n{err}"
        );
        assert_eq!(
            count_lines(
                err,
                &format!("skipped: {dep} (because cluster.main failed)")
            ),
            1,
            "{dep} in the summary once:\n{err}"
        );
        assert!(
            !err.contains(&format!("{dep}: create...")),
            "{dep} must not start:\n{err}"
        );
    }
    assert!(
        err.contains("Apply failed: 1 failed, 5 skipped; 6 added"),
        "{err}"
    );
    assert_eq!(
        w.proxy.stats().count("CreateNodegroup"),
        0,
        "no nodegroup request was sent"
    );
    assert!(
        kube_writes(&w.kube.requests()).is_empty(),
        "eksnet wrote nothing to Kubernetes: {:?}",
        w.kube.requests()
    );

    // Independent branches: in AWS and recorded as present in the state.
    let snap = snapshot(d);
    for addr in [
        "vpc.main",
        "cidr_block.pods",
        "subnet.pod_a",
        "subnet.pod_b",
        "iam_role.cluster",
        "iam_role.node",
    ] {
        let row = snap
            .resources
            .get(&addr.parse().expect("addr"))
            .unwrap_or_else(|| {
                panic!(
                    "{addr} not in the state: {:?}",
                    snap.resources.keys().collect::<Vec<_>>()
                )
            });
        assert_eq!(row.status, ResourceStatus::Present, "{addr}");
        assert!(row.cloud_id.is_some(), "{addr} has its cloud id");
    }
    assert!(
        snap.resources
            .get(&"cluster.main".parse().expect("addr"))
            .is_none_or(|r| r.status != ResourceStatus::Present),
        "cluster not recorded as present"
    );
    for dep in dependents {
        assert!(
            !snap.resources.contains_key(&dep.parse().expect("addr")),
            "{dep} never started, so no row"
        );
    }
    assert!(
        w.aws
            .eks
            .list_clusters()
            .send()
            .await
            .expect("clusters")
            .clusters()
            .is_empty(),
        "no cluster in moto"
    );
    for cidr in POD_CIDRS {
        let f = aws_sdk_ec2::types::Filter::builder()
            .name("cidr-block")
            .values(cidr)
            .build();
        assert_eq!(
            w.aws
                .ec2
                .describe_subnets()
                .filters(f)
                .send()
                .await
                .expect("subnets")
                .subnets()
                .len(),
            1,
            "{cidr} created"
        );
    }
    for role in [CLUSTER_ROLE, NODE_ROLE] {
        assert!(
            w.aws.iam.get_role().role_name(role).send().await.is_ok(),
            "{role} created"
        );
    }

    // The cause gone: the next apply creates exactly what is missing.
    w.proxy.config(json!({"reject_op": null}));
    let fixed = run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);
    assert!(
        fixed
            .stderr
            .contains("Apply complete! Resources: 6 added, 0 changed, 0 replaced, 0 destroyed."),
        "{}",
        fixed.stderr
    );
    w.assert_converged(&["my-nodegroup", "my-nodegroup-extra"], "after the fix")
        .await;
    w.plan_is_clean(d, "after the fix");
    assert_all_present(d, EXAMPLE_RESOURCES + 1, "after the fix");
}

/// 4b. A destroy step that fails for good (a subnet whose `DependencyViolation` outlasts its
///     timeout): the steps that wait for it (the secondary block, then the stack) are skipped
///     and each gets its `skipped` event naming the failed resource, under `--json` too (a
///     destroy step's reason used to be lost there); once the subnet can go, destroy finishes.
#[tokio::test]
async fn failed_destroy_step_reports_its_skipped_dependents() {
    let w = world().await;
    let dir = example_dir();
    let d = dir.path();
    run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);
    edit_spec(d, |t| t + "\n[settings.timeouts]\nsubnet = 1\n");
    w.proxy
        .config(json!({"dependency_violation_count": 1_000_000}));

    let failed = run_ok(
        w.eksnet(d)
            .args(["destroy", SPEC, "--auto-approve", "--json"]),
        1,
    );
    let events: Vec<Value> = failed
        .stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON event ({e}): {l}\n{}", failed.stderr))
        })
        .collect();
    let subnets = ["subnet.pod_a", "subnet.pod_b"];
    for s in subnets {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "failed" && e["addr"] == s),
            "{s} failed:\n{}",
            failed.stderr
        );
    }
    for dep in ["cidr_block.pods", "vpc.main"] {
        let skipped: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "skipped" && e["addr"] == dep)
            .collect();
        assert_eq!(skipped.len(), 1, "{dep} skipped once:\n{}", failed.stderr);
        let because = skipped[0]["because"].as_str().unwrap_or_default();
        assert!(
            subnets.contains(&because),
            "{dep} skipped because of a failed subnet, not {because:?}"
        );
    }
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .unwrap_or_else(|| panic!("a summary event:\n{}", failed.stderr));
    assert_eq!(summary["ok"], false, "{summary}");
    assert_eq!(summary["failed"], 2, "{summary}");
    assert_eq!(summary["skipped"], 2, "{summary}");

    // Without --json the same reasons, by address (no "(destroy)" suffix in the event line).
    let human = run_ok(w.eksnet(d).args(["destroy", SPEC, "--auto-approve"]), 1);
    for dep in ["cidr_block.pods", "vpc.main"] {
        assert!(
            subnets.iter().any(|s| count_lines(
                &human.stderr,
                &format!("{dep}: skipped because {s} failed")
            ) == 1),
            "{dep} skipped because of a subnet:\n{}",
            human.stderr
        );
    }

    w.proxy.config(json!({"dependency_violation_count": null}));
    run_ok(w.eksnet(d).args(["destroy", SPEC, "--auto-approve"]), 0);
    w.assert_destroyed("destroy after the subnets could go")
        .await;
}

/// 5. Two applies started together on one state: one gets the lock and converges, the other
///    is refused naming the holder; nothing is left half done.
#[tokio::test]
async fn concurrent_applies_one_wins_the_lock() {
    let w = world().await;
    w.proxy.config(json!({"latency_ms": 100}));
    let dir = example_dir();
    let d = dir.path();
    // The state exists already (as after any earlier run), so this is about the command lock;
    // two first runs creating the state together are the next test.
    drop(LocalStore::open(&d.join(STATE)).expect("create the state"));
    let spawn = || {
        w.eksnet(d)
            .args(["apply", SPEC, "--auto-approve"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn eksnet")
    };
    let (a, b) = (spawn(), spawn());
    let outs: Vec<_> = [a, b]
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
    let all = format!(
        "--- first\n{}\n--- second\n{}",
        text(&outs[0]),
        text(&outs[1])
    );
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [Some(0), Some(1)],
        "exactly one apply wins: {codes:?}\n{all}"
    );
    let (winner, loser) = if codes[0] == Some(0) {
        (&outs[0], &outs[1])
    } else {
        (&outs[1], &outs[0])
    };
    assert!(
        text(loser).contains(&format!("is locked by `eksnet apply {SPEC}`")),
        "{all}"
    );
    assert!(
        !text(loser).contains("stale lock"),
        "the holder was alive: {all}"
    );
    assert!(
        text(winner).contains(&format!(
            "Apply complete! Resources: {EXAMPLE_RESOURCES} added"
        )),
        "{all}"
    );
    w.assert_converged(&["my-nodegroup"], "after the race")
        .await;
    w.plan_is_clean(d, "after the race");
    assert_all_present(d, EXAMPLE_RESOURCES, "after the race");
}

/// 5b. Two commands that both find no state yet and create it at the same moment: one must get
///     the lock and the other be refused with "is locked by" — never fail on SQLite's own
///     locking ("database is locked"). Destroys of nothing keep each round short; several
///     rounds because the window is a few milliseconds wide.
#[tokio::test]
async fn concurrent_first_runs_creating_the_state_never_fail_with_database_is_locked() {
    let w = world().await;
    w.proxy.config(json!({"latency_ms": 100}));
    for round in 1..=24 {
        let dir = example_dir();
        let d = dir.path();
        let spawn = || {
            w.eksnet(d)
                .args(["destroy", SPEC, "--auto-approve"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn eksnet")
        };
        let (a, b) = (spawn(), spawn());
        for out in [a, b]
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait"))
        {
            let err = String::from_utf8_lossy(&out.stderr);
            let ok = out.status.code() == Some(0)
                || (out.status.code() == Some(1) && err.contains("is locked by `eksnet destroy"));
            assert!(ok, "round {round}: a command racing to create the state must either run or be refused by the eksnet lock, got {:?}:\n{err}", out.status.code());
        }
        assert!(
            snapshot(d).resources.is_empty(),
            "round {round}: state intact"
        );
    }
}

/// 6. Destroy deletes independent nodegroups concurrently, and the cluster only once all of
///    them are gone.
#[tokio::test]
async fn destroy_deletes_nodegroups_in_parallel_then_the_cluster() {
    let w = world().await;
    let dir = example_dir();
    let d = dir.path();
    edit_spec(d, |t| {
        t + &extra_nodegroup("second", "my-nodegroup-2")
            + &extra_nodegroup("third", "my-nodegroup-3")
    });
    run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);
    w.assert_converged(
        &["my-nodegroup", "my-nodegroup-2", "my-nodegroup-3"],
        "three nodegroups",
    )
    .await;

    const DELETING_MS: f64 = 1000.0;
    w.proxy
        .config(json!({"latency_ms": 50, "nodegroup_delete_ms": DELETING_MS as u64}));
    w.proxy.reset_stats();
    run_ok(w.eksnet(d).args(["destroy", SPEC, "--auto-approve"]), 0);
    let stats = w.proxy.stats();
    let deletes = stats.of("DeleteNodegroup");
    assert_eq!(
        deletes.len(),
        3,
        "one DeleteNodegroup per nodegroup: {deletes:?}"
    );
    assert!(deletes.iter().all(|r| r.status == 200), "{deletes:?}");
    let last_sent = deletes.iter().map(|r| r.start_ms).fold(f64::MIN, f64::max);
    let first_answered = deletes.iter().map(|r| r.end_ms).fold(f64::MAX, f64::min);
    let last_answered = deletes.iter().map(|r| r.end_ms).fold(f64::MIN, f64::max);
    // Each DELETING window opens when its DeleteNodegroup is answered and lasts DELETING_MS.
    assert!(
        last_sent < first_answered + DELETING_MS,
        "all DeleteNodegroup sent while the first nodegroup was still DELETING: {deletes:?}"
    );
    assert!(
        last_sent < first_answered,
        "the three DeleteNodegroup were in flight together: {deletes:?}"
    );
    let clusters = stats.of("DeleteCluster");
    assert_eq!(
        clusters.len(),
        1,
        "one DeleteCluster, never refused: {clusters:?}"
    );
    assert_eq!(clusters[0].status, 200);
    // 20 ms of slack: the window is timed inside the proxy a little before the record closes.
    assert!(
        clusters[0].start_ms >= last_answered + DELETING_MS - 20.0,
        "DeleteCluster sent {:.0} ms after the last DeleteNodegroup answer, before the nodegroups were gone",
        clusters[0].start_ms - last_answered
    );
    assert!(
        stats.faulted("nodegroups_deleting").is_empty(),
        "no DeleteCluster while a nodegroup was DELETING"
    );
    assert!(
        w.aws
            .eks
            .list_clusters()
            .send()
            .await
            .expect("clusters")
            .clusters()
            .is_empty(),
        "cluster gone"
    );
}

/// A destroy that gave up while the cluster was still DELETING (its timeout ran out), then
/// an apply: the cluster cannot be taken back, so it is planned as a create, which waits
/// for the old cluster to be gone (EKS refuses the name until then) and then converges.
#[tokio::test]
async fn apply_after_a_destroy_that_timed_out_mid_delete_recreates_the_cluster() {
    let w = world().await;
    let dir = example_dir();
    let d = dir.path();
    run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);

    w.proxy.config(json!({"cluster_delete_ms": 4000}));
    edit_spec(d, |s| {
        s.replacen(
            "region = \"us-west-2\"",
            "region = \"us-west-2\"\ntimeouts = { cluster = 1 }",
            1,
        )
    });
    let destroy =
        run(w
            .eksnet(d)
            .env("EKSNET_POLL_MAX_MS", "200")
            .args(["destroy", SPEC, "--auto-approve"]));
    assert_eq!(destroy.code, 1, "{}", destroy.stderr);
    assert!(
        destroy.stderr.contains(
            "timed out after 1s waiting for deletion of cluster my-custom-networking-cluster"
        ),
        "{}",
        destroy.stderr
    );
    edit_spec(d, |s| s.replacen("\ntimeouts = { cluster = 1 }", "", 1));

    w.proxy.reset_stats();
    let apply = run_ok(
        w.eksnet(d)
            .env("EKSNET_POLL_MAX_MS", "200")
            .args(["apply", SPEC, "--auto-approve"]),
        0,
    );
    assert!(
        apply.stdout.contains("# cluster.main will be created")
            && apply.stdout.contains("it is still being deleted"),
        "{}",
        apply.stdout
    );
    assert!(
        !w.proxy.stats().faulted("in_use").is_empty(),
        "the first CreateCluster met the name still in use"
    );
    w.assert_converged(&["my-nodegroup"], "recreated after the interrupted destroy")
        .await;
    w.plan_is_clean(d, "plan after the recreate");
}

const ADDON_SPEC: &str = "examples/custom-networking-addon.toml";
const ADDON_STATE: &str = "state/custom-networking-addon.db";
/// Stack, 2 roles, cluster, block, 2 pod subnets, 3 add-ons, 2 ENIConfigs, nodegroup.
const ADDON_RESOURCES: usize = 13;
const ADDONS: [&str; 3] = ["coredns", "kube-proxy", "vpc-cni"];

impl World {
    /// The add-on path: the proxy serves the add-on API (with short windows) and acts on the
    /// fake API server as EKS does; the cluster has no self-managed aws-node. Again after
    /// every `reset`.
    fn addon_path(&self) {
        self.proxy.config(json!({
            "kube_url": self.kube.url,
            "addon_create_ms": 200,
            "addon_update_ms": 200,
            "addon_delete_ms": 200,
        }));
        let (status, body) = http(
            self.kube.url.trim_start_matches("http://"),
            "DELETE",
            AWS_NODE,
            "",
        );
        assert_eq!(status, 200, "delete the seeded aws-node: {body}");
    }

    /// The add-on example exists exactly once: each add-on once and ACTIVE (through the
    /// proxy, which serves them), one nodegroup, custom networking on in aws-node as the API
    /// server has it, every state row present, a clean plan.
    async fn assert_addon_example_converged(&self, d: &Path, ctx: &str) {
        let eks = sdk(&self.proxy.url).await.eks;
        let listed = eks
            .list_addons()
            .cluster_name(CLUSTER)
            .send()
            .await
            .expect("ListAddons");
        assert_eq!(listed.addons(), ADDONS, "{ctx}");
        for name in ADDONS {
            let a = eks
                .describe_addon()
                .cluster_name(CLUSTER)
                .addon_name(name)
                .send()
                .await
                .expect("DescribeAddon");
            assert_eq!(
                a.addon().and_then(|a| a.status()).map(|s| s.as_str()),
                Some("ACTIVE"),
                "{ctx}: {name}"
            );
        }
        let groups = eks
            .list_nodegroups()
            .cluster_name(CLUSTER)
            .send()
            .await
            .expect("ListNodegroups");
        assert_eq!(groups.nodegroups(), ["my-nodegroup"], "{ctx}");
        let env = aws_node_env(&self.kube.get(AWS_NODE));
        assert!(
            env.iter()
                .any(|e| e["name"] == "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG" && e["value"] == "true"),
            "{ctx}: {env:?}"
        );
        assert_all_present_in(d, ADDON_STATE, ADDON_RESOURCES, ctx);
        let r = run(self
            .eksnet(d)
            .args(["plan", ADDON_SPEC, "--detailed-exitcode"]));
        assert_eq!(r.code, 0, "{ctx}: clean plan\n{}\n{}", r.stdout, r.stderr);
    }
}

/// 1e. The add-on path: SIGKILL right after each add-on request (CreateAddon of apply,
///     DeleteAddon of destroy) is answered, before eksnet has recorded it: the next apply
///     converges with each add-on exactly once, and the next destroy finishes.
#[tokio::test]
async fn crash_after_each_addon_request_then_apply_or_destroy_again_converges() {
    let w = world().await;
    w.addon_path();
    let addon_ops = |w: &World| -> Vec<String> {
        mutating_ops(w)
            .into_iter()
            .filter(|op| op.ends_with("Addon"))
            .collect()
    };
    let dir = example_dir();
    run_ok(
        w.eksnet(dir.path())
            .args(["apply", ADDON_SPEC, "--auto-approve"]),
        0,
    );
    let creates = addon_ops(&w);
    w.proxy.reset_stats();
    run_ok(
        w.eksnet(dir.path())
            .args(["destroy", ADDON_SPEC, "--auto-approve"]),
        0,
    );
    let deletes = addon_ops(&w);
    assert_eq!(
        (creates.len(), deletes.len()),
        (3, 3),
        "{creates:?} {deletes:?}"
    );
    drop(dir);

    // One crash point: `command` killed after the n-th `op`, the dead run's lock freed, and
    // the same command run again to success.
    let crash_and_rerun = |d: &Path, command: &str, op: &str, n: u64| -> String {
        let ctx = format!("{command} killed after #{n} {op}");
        eprintln!("{ctx}");
        run_killed_at_spec(&w, d, ADDON_SPEC, command, op, n, &ctx);
        free_stale_lock_of(&w, d, ADDON_SPEC, ADDON_STATE, command, &ctx);
        let again = run(w.eksnet(d).args([command, ADDON_SPEC, "--auto-approve"]));
        assert_eq!(
            again.code, 0,
            "{ctx}: {command} again\n{}\n{}",
            again.stdout, again.stderr
        );
        ctx
    };
    for (op, n) in crash_points(&creates) {
        w.reset();
        w.addon_path();
        let dir = example_dir();
        let ctx = crash_and_rerun(dir.path(), "apply", &op, n);
        w.assert_addon_example_converged(dir.path(), &ctx).await;
    }
    for (op, n) in crash_points(&deletes) {
        w.reset();
        w.addon_path();
        let dir = example_dir();
        let d = dir.path();
        run_ok(w.eksnet(d).args(["apply", ADDON_SPEC, "--auto-approve"]), 0);
        let ctx = crash_and_rerun(d, "destroy", &op, n);
        assert!(
            w.aws
                .eks
                .list_clusters()
                .send()
                .await
                .expect("clusters")
                .clusters()
                .is_empty(),
            "{ctx}: cluster gone"
        );
        assert!(
            snapshot_of(d, ADDON_STATE).resources.is_empty(),
            "{ctx}: state emptied"
        );
    }
}

/// 1c. The crash points of a create-before-destroy nodegroup replacement (an instance type
///     changed): SIGKILL right after CreateNodegroup was answered (the new one still
///     CREATING) and right after DeleteNodegroup was answered (the old one DELETING); the
///     create refused (its intent, naming the old nodegroup, stored and nothing made) and the
///     delete refused (the new one recorded, the old one left). Each time the next apply
///     converges to exactly one nodegroup, ACTIVE, with the new instance type, the state row
///     naming it with nothing left to delete, and a clean plan. And `destroy` after a refused
///     delete removes the old nodegroup with everything else.
#[tokio::test]
async fn crash_at_each_point_of_a_nodegroup_replacement_then_reapply_converges_to_one() {
    let w = world().await;
    enum Break {
        KillAfter(&'static str),
        Refuse(&'static str),
    }
    for point in [
        Break::KillAfter("CreateNodegroup"),
        Break::KillAfter("DeleteNodegroup"),
        Break::Refuse("CreateNodegroup"),
        Break::Refuse("DeleteNodegroup"),
    ] {
        w.reset();
        let dir = example_dir();
        let d = dir.path();
        run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);
        edit_spec(d, |s| {
            s.replacen(
                "instance_types = [\"t3.medium\"]",
                "instance_types = [\"m5.large\"]",
                1,
            )
        });
        w.proxy
            .config(json!({"nodegroup_create_ms": 1000, "nodegroup_delete_ms": 1000}));
        let ctx = match point {
            Break::KillAfter(op) => {
                let ctx = format!("replacement killed after {op}");
                eprintln!("{ctx}");
                run_killed_at(&w, d, "apply", op, 1, &ctx);
                free_stale_lock(&w, d, "apply", &ctx);
                ctx
            }
            Break::Refuse(op) => {
                let ctx = format!("replacement with {op} refused");
                eprintln!("{ctx}");
                w.proxy.config(json!({ "reject_op": op }));
                let failed = run(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]));
                w.proxy.config(json!({ "reject_op": null }));
                assert_eq!(failed.code, 1, "{ctx}: {}", failed.stderr);
                let row = &snapshot(d).resources[&"nodegroup.main".parse().expect("addr")];
                assert_eq!(
                    row.deposed
                        .iter()
                        .map(|x| x.cloud_id.as_str())
                        .collect::<Vec<_>>(),
                    [format!("{CLUSTER}/my-nodegroup")],
                    "{ctx}: the old nodegroup is recorded as still to delete"
                );
                ctx
            }
        };
        let again = run(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]));
        assert_eq!(
            again.code, 0,
            "{ctx}: re-apply\n--- stdout\n{}\n--- stderr\n{}",
            again.stdout, again.stderr
        );
        w.assert_converged(&["my-nodegroup-cbd"], &ctx).await;
        let ng = described_nodegroup(&w.aws, CLUSTER, "my-nodegroup-cbd").await;
        assert_eq!(ng.status().map(|s| s.as_str()), Some("ACTIVE"), "{ctx}");
        assert_eq!(ng.instance_types(), ["m5.large".to_string()], "{ctx}");
        let snap = snapshot(d);
        let row = &snap.resources[&"nodegroup.main".parse().expect("addr")];
        assert_eq!(
            row.cloud_id.as_deref(),
            Some(format!("{CLUSTER}/my-nodegroup-cbd").as_str()),
            "{ctx}"
        );
        assert!(row.deposed.is_empty(), "{ctx}: {:?}", row.deposed);
        assert_all_present(d, EXAMPLE_RESOURCES, &ctx);
        w.plan_is_clean(d, &ctx);
    }

    // The old nodegroup left by a refused delete, then `destroy` instead of an apply: it
    // deletes both nodegroups and everything else.
    w.reset();
    let dir = example_dir();
    let d = dir.path();
    let ctx = "destroy after a replacement left its old nodegroup";
    run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);
    edit_spec(d, |s| {
        s.replacen(
            "instance_types = [\"t3.medium\"]",
            "instance_types = [\"m5.large\"]",
            1,
        )
    });
    w.proxy.config(json!({ "reject_op": "DeleteNodegroup" }));
    let failed = run(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]));
    w.proxy.config(json!({ "reject_op": null }));
    assert_eq!(failed.code, 1, "{ctx}: {}", failed.stderr);
    let listed = run_ok(w.eksnet(d).args(["state", "list", "--state", STATE]), 0);
    assert!(
        listed
            .stdout
            .contains(&format!("(old object {CLUSTER}/my-nodegroup to delete)")),
        "{ctx}: {}",
        listed.stdout
    );
    let destroyed = run(w.eksnet(d).args(["destroy", SPEC, "--auto-approve"]));
    assert_eq!(
        destroyed.code, 0,
        "{ctx}\n--- stdout\n{}\n--- stderr\n{}",
        destroyed.stdout, destroyed.stderr
    );
    assert!(
        destroyed.stdout.contains("old object"),
        "{ctx}: the plan names the old object\n{}",
        destroyed.stdout
    );
    w.assert_destroyed(ctx).await;
    assert!(snapshot(d).resources.is_empty(), "{ctx}: state emptied");
}

/// eksnet's launch template for `max_pods`, read through the SDK: every template of that name
/// (EC2 allows one; more would be a duplicate made by a retry), with its default version's
/// number and user data.
async fn launch_templates(aws: &eksnet::cloud::aws::AwsClients) -> Vec<(String, i64, String)> {
    use base64::Engine as _;
    let name = format!("eksnet-{CLUSTER}-my-nodegroup");
    let all = aws
        .ec2
        .describe_launch_templates()
        .send()
        .await
        .expect("describe launch templates");
    let mut out = Vec::new();
    for t in all.launch_templates() {
        let Some(n) = t.launch_template_name().filter(|n| n.starts_with(&name)) else {
            continue;
        };
        let v = aws
            .ec2
            .describe_launch_template_versions()
            .launch_template_name(n)
            .versions("$Default")
            .send()
            .await
            .expect("versions");
        let data = v.launch_template_versions()[0]
            .launch_template_data()
            .and_then(|d| d.user_data())
            .unwrap_or_default();
        let text = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 user data");
        out.push((
            n.to_string(),
            t.default_version_number().unwrap_or(0),
            String::from_utf8(text).expect("utf-8"),
        ));
    }
    out
}

/// Crash points of `max_pods` (eksnet's launch template): killed right after each mutating
/// request of the first apply that makes the template (CreateLaunchTemplate before the state
/// records it, the nodegroup create on it), and of the apply that changes the value
/// (CreateLaunchTemplateVersion before the version is the default, ModifyLaunchTemplate,
/// UpdateNodegroupVersion). Each time the next apply converges: one template, its default
/// version carrying the spec's value, the nodegroup on that version, a clean plan.
#[tokio::test]
async fn crash_at_each_point_of_a_launch_template_create_or_new_version_then_reapply_converges() {
    let w = world().await;
    let with_max_pods = |n: u32| {
        move |s: String| {
            s.replacen(
                "instance_types = [\"t3.medium\"]\n",
                &format!("instance_types = [\"t3.medium\"]\nami_type = \"AL2023_x86_64_STANDARD\"\nmax_pods = {n}\n"),
                1,
            )
        }
    };
    let converged = |d: &Path, max_pods: u32, ctx: String| {
        let w = &w;
        let d = d.to_path_buf();
        async move {
            let again = run(w.eksnet(&d).args(["apply", SPEC, "--auto-approve"]));
            assert_eq!(
                again.code, 0,
                "{ctx}: re-apply\n--- stdout\n{}\n--- stderr\n{}",
                again.stdout, again.stderr
            );
            w.assert_converged(&["my-nodegroup"], &ctx).await;
            let templates = launch_templates(&w.aws).await;
            assert_eq!(templates.len(), 1, "{ctx}: {templates:?}");
            let (_, version, user_data) = &templates[0];
            assert!(
                user_data.contains(&format!("maxPods: {max_pods}\n")),
                "{ctx}: {user_data}"
            );
            // Through the proxy: it answers UpdateNodegroupVersion, which moto lacks.
            let via_proxy = sdk(&w.proxy.url).await;
            let ng = described_nodegroup(&via_proxy, CLUSTER, "my-nodegroup").await;
            assert_eq!(
                ng.launch_template().and_then(|l| l.version()),
                Some(version.to_string().as_str()),
                "{ctx}: the nodegroup is on the default version\n--- re-apply\n{}\n{}",
                again.stdout,
                again.stderr
            );
            assert_all_present(&d, EXAMPLE_RESOURCES + 1, &ctx);
            w.plan_is_clean(&d, &ctx);
        }
    };

    // The first apply.
    for (op, n) in [("CreateLaunchTemplate", 1), ("CreateNodegroup", 1)] {
        w.reset();
        let dir = example_dir();
        let d = dir.path();
        edit_spec(d, with_max_pods(10));
        let ctx = format!("first apply killed after {op}");
        eprintln!("{ctx}");
        run_killed_at(&w, d, "apply", op, n, &ctx);
        free_stale_lock(&w, d, "apply", &ctx);
        converged(d, 10, ctx).await;
    }

    // A new value.
    for op in [
        "CreateLaunchTemplateVersion",
        "ModifyLaunchTemplate",
        "UpdateNodegroupVersion",
    ] {
        w.reset();
        let dir = example_dir();
        let d = dir.path();
        edit_spec(d, with_max_pods(10));
        run_ok(w.eksnet(d).args(["apply", SPEC, "--auto-approve"]), 0);
        edit_spec(d, |s| s.replacen("max_pods = 10", "max_pods = 8", 1));
        let ctx = format!("max_pods change killed after {op}");
        eprintln!("{ctx}");
        run_killed_at(&w, d, "apply", op, 1, &ctx);
        free_stale_lock(&w, d, "apply", &ctx);
        converged(d, 8, ctx).await;
    }
}
