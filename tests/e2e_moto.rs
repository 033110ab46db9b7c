//! End to end against moto with the real binary: the tutorial example is validated, planned,
//! applied, checked through the AWS SDK (not through eksnet), re-planned to no changes, changed,
//! drifted behind eksnet's back, and destroyed. Plus the adopted-VPC variant, saved plans,
//! locking and confirmation.

mod common;
#[path = "common/proxy.rs"]
mod proxy;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// The tutorial's world: moto behind the fault proxy, which adds what EKS returns and moto
/// does not (the cluster security group, the VPC id), and the fake Kubernetes API server
/// reached through a kubeconfig.
struct Tutorial {
    _guard: MotoGuard,
    proxy: proxy::Proxy,
    kube: &'static FakeKube,
    dir: tempfile::TempDir,
}

fn tutorial() -> Tutorial {
    let (guard, moto_url, kube) = moto_and_kube();
    let proxy = proxy::Proxy::start(&moto_url);
    proxy.config(json!({"eks_cluster_fields": true}));
    Tutorial {
        _guard: guard,
        proxy,
        kube,
        dir: example_dir(),
    }
}

impl Tutorial {
    fn eksnet(&self) -> Command {
        let mut c = eksnet(&self.proxy.url, self.dir.path());
        c.env("EKSNET_KUBECONFIG", &self.kube.kubeconfig);
        // The fake's context is not named after the cluster and its server is not the
        // endpoint moto reports, so it is named.
        c.env("EKSNET_KUBE_CONTEXT", "fake");
        c
    }

    /// `apply`, which must succeed without one mutating request to AWS.
    fn apply_changes_nothing_in_aws(&self) {
        self.proxy.reset_stats();
        run_ok(self.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
        let stats = self.proxy.stats();
        assert_eq!(stats.mutating(), 0, "{:?}", stats.requests());
    }
}

const SPEC: &str = "examples/custom-networking.toml";

fn set_subnet_tag(dir: &Path, from: &str, to: &str) {
    let p = dir.join(SPEC);
    let text = std::fs::read_to_string(&p).expect("read spec");
    assert!(text.contains(from), "spec lacks {from}");
    std::fs::write(&p, text.replacen(from, to, 1)).expect("write spec");
}

#[tokio::test]
async fn tutorial_example_end_to_end() {
    let t = tutorial();
    let d = t.dir.path();
    let url = t.proxy.url.clone();
    let aws = sdk(&url).await;

    run_ok(t.eksnet().args(["validate", SPEC]), 0);
    t.proxy.reset_stats();
    // With moto's instant answers, requests sent together can look sequential; a latency
    // makes the proxy's round-trip count mean what it says. It is longer than the spread of
    // one wave's starts on a loaded 2-CPU machine (tests run in parallel), about 100 ms.
    t.proxy.config(json!({"latency_ms": 150}));
    let plan = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 2);
    t.proxy.config(json!({"latency_ms": null}));
    // Nothing exists and the state is empty: every lookup whose key is written in the spec
    // (stack, roles, cluster) goes out in one wave; the rest depends on them and is absent.
    let first = t.proxy.stats();
    assert_eq!(first.round_trips(), 1, "first plan: {:?}", first.requests());
    assert_eq!(first.count("DescribeCluster"), 1, "{:?}", first.requests());
    assert!(
        plan.stdout
            .contains("Plan: 11 to add, 0 to change, 0 to replace, 0 to destroy."),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("(known after apply)"));
    assert!(
        !d.join("state/custom-networking.db").exists(),
        "plan must not create the state"
    );

    let aws_node_path = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node";
    assert!(
        t.kube.requests().is_empty(),
        "planning before the cluster exists must not touch Kubernetes: {:?}",
        t.kube.requests()
    );
    let seeded = t.kube.get(aws_node_path);
    t.proxy.reset_stats();
    let applied = run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    assert!(
        applied
            .stderr
            .contains("Apply complete! Resources: 11 added"),
        "{}",
        applied.stderr
    );
    assert!(
        d.join("state/custom-networking.db").exists(),
        "default state path"
    );

    // --- everything exists with the right attributes, seen through the SDK ---
    let stacks = aws
        .cloudformation
        .describe_stacks()
        .stack_name("my-eks-custom-networking-vpc")
        .send()
        .await
        .expect("stack");
    let stack = &stacks.stacks()[0];
    assert_eq!(
        stack.stack_status().map(|s| s.as_str()),
        Some("CREATE_COMPLETE")
    );
    // The template's NAT gateways are outputs, for a pod subnets' route table to name
    // (`${vpc.main.outputs.NatGateway01}`): moto's CloudFormation makes them and gives ids.
    for nat in ["NatGateway01", "NatGateway02"] {
        let value = stack
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some(nat))
            .and_then(|o| o.output_value())
            .unwrap_or_default();
        assert!(value.starts_with("nat-"), "{nat} = {value:?}");
    }
    let res = aws
        .cloudformation
        .describe_stack_resources()
        .stack_name("my-eks-custom-networking-vpc")
        .send()
        .await
        .expect("resources");
    let phys = |logical: &str| {
        res.stack_resources()
            .iter()
            .find(|r| r.logical_resource_id() == Some(logical))
            .and_then(|r| r.physical_resource_id())
            .map(String::from)
            .expect(logical)
    };
    let (vpc_id, private1, private2) = (
        phys("VPC"),
        phys("PrivateSubnet01"),
        phys("PrivateSubnet02"),
    );
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .expect("vpc");
    let assoc: Vec<_> = vpcs.vpcs()[0]
        .cidr_block_association_set()
        .iter()
        .filter(|a| a.cidr_block() == Some("192.168.1.0/24"))
        .collect();
    assert_eq!(assoc.len(), 1, "exactly one 192.168.1.0/24 association");
    assert_eq!(
        assoc[0]
            .cidr_block_state()
            .and_then(|s| s.state())
            .map(|s| s.as_str()),
        Some("associated")
    );
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc_id)
                .build(),
        )
        .send()
        .await
        .expect("subnets");
    let by_cidr = |c: &str| {
        subnets
            .subnets()
            .iter()
            .find(|s| s.cidr_block() == Some(c))
            .cloned()
            .expect(c)
    };
    let tag = |s: &aws_sdk_ec2::types::Subnet, k: &str| {
        s.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(String::from)
    };
    for (cidr, primary, name) in [
        (
            "192.168.1.0/27",
            "192.168.0.64/27",
            "my-eks-custom-networking-vpc-PrivateSubnet01",
        ),
        (
            "192.168.1.32/27",
            "192.168.0.96/27",
            "my-eks-custom-networking-vpc-PrivateSubnet02",
        ),
    ] {
        let pod = by_cidr(cidr);
        assert_eq!(
            pod.availability_zone(),
            by_cidr(primary).availability_zone(),
            "pod subnet {cidr} in its cluster subnet's AZ"
        );
        assert_eq!(tag(&pod, "Name").as_deref(), Some(name));
        assert_eq!(
            tag(&pod, "kubernetes.io/role/internal-elb").as_deref(),
            Some("1")
        );
        assert_eq!(
            tag(&pod, "eksnet:address").map(|a| a.starts_with("subnet.pod_")),
            Some(true)
        );
    }
    for (role, service, policies) in [
        (
            "myCustomNetworkingAmazonEKSClusterRole",
            "eks.amazonaws.com",
            vec!["AmazonEKSClusterPolicy"],
        ),
        (
            "myCustomNetworkingAmazonEKSNodeRole",
            "ec2.amazonaws.com",
            vec![
                "AmazonEC2ContainerRegistryReadOnly",
                "AmazonEKSWorkerNodePolicy",
                "AmazonEKS_CNI_Policy",
            ],
        ),
    ] {
        let r = aws
            .iam
            .get_role()
            .role_name(role)
            .send()
            .await
            .expect("role");
        let doc = r
            .role()
            .and_then(|r| r.assume_role_policy_document())
            .unwrap_or_default();
        let doc = percent_encoding::percent_decode_str(doc)
            .decode_utf8_lossy()
            .to_string();
        assert!(doc.contains(service), "trust of {role}: {doc}");
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
        assert_eq!(names, policies);
    }
    let cluster = aws
        .eks
        .describe_cluster()
        .name("my-custom-networking-cluster")
        .send()
        .await
        .expect("cluster");
    let cluster = cluster.cluster().expect("cluster body");
    assert!(cluster
        .role_arn()
        .is_some_and(|a| a.ends_with(":role/myCustomNetworkingAmazonEKSClusterRole")));
    let mut cs: Vec<String> = cluster
        .resources_vpc_config()
        .map(|v| v.subnet_ids().to_vec())
        .unwrap_or_default();
    cs.sort();
    let mut want = vec![private1.clone(), private2.clone()];
    want.sort();
    assert_eq!(cs, want, "cluster on the stack's private subnets");
    let ng = aws
        .eks
        .describe_nodegroup()
        .cluster_name("my-custom-networking-cluster")
        .nodegroup_name("my-nodegroup")
        .send()
        .await
        .expect("nodegroup");
    let ng = ng.nodegroup().expect("nodegroup body");
    assert_eq!(ng.instance_types(), ["t3.medium"]);
    assert!(ng
        .node_role()
        .is_some_and(|a| a.ends_with(":role/myCustomNetworkingAmazonEKSNodeRole")));

    // --- the Kubernetes side ---
    let through_proxy = sdk(&t.proxy.url).await;
    let described = through_proxy
        .eks
        .describe_cluster()
        .name("my-custom-networking-cluster")
        .send()
        .await
        .expect("cluster");
    let cluster_sg = described
        .cluster()
        .and_then(|c| c.resources_vpc_config())
        .and_then(|v| v.cluster_security_group_id())
        .expect("cluster security group (filled in by the proxy as EKS does)")
        .to_string();
    let enis = t
        .kube
        .get("/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs");
    let mut found: Vec<(String, String, Vec<String>)> = enis["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            let groups = o["spec"]["securityGroups"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                o["spec"]["subnet"].as_str().unwrap_or_default().to_string(),
                groups,
            )
        })
        .collect();
    found.sort();
    let pod_a = by_cidr("192.168.1.0/27");
    let pod_b = by_cidr("192.168.1.32/27");
    let want: Vec<(String, String, Vec<String>)> = vec![
        (
            pod_a.availability_zone().unwrap_or_default().to_string(),
            pod_a.subnet_id().unwrap_or_default().to_string(),
            vec![cluster_sg.clone()],
        ),
        (
            pod_b.availability_zone().unwrap_or_default().to_string(),
            pod_b.subnet_id().unwrap_or_default().to_string(),
            vec![cluster_sg.clone()],
        ),
    ];
    assert_eq!(
        found, want,
        "one ENIConfig per AZ, named after it, pod subnet and cluster security group"
    );
    let container =
        |ds: &serde_json::Value| ds["spec"]["template"]["spec"]["containers"][0].clone();
    let live = t.kube.get(aws_node_path);
    assert_eq!(
        container(&live)["image"],
        container(&seeded)["image"],
        "image untouched"
    );
    let env_of = |c: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        c["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["name"].as_str().unwrap_or_default().to_string(),
                            e.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let before_env = env_of(&container(&seeded));
    let after_env = env_of(&container(&live));
    for entry in &before_env {
        assert!(after_env.contains(entry), "env entry {} untouched", entry.0);
    }
    let get_env = |k: &str| {
        after_env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, e)| e["value"].clone())
    };
    assert_eq!(
        get_env("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"),
        Some(serde_json::json!("true"))
    );
    assert_eq!(
        get_env("ENI_CONFIG_LABEL_DEF"),
        Some(serde_json::json!("topology.kubernetes.io/zone"))
    );
    assert_eq!(after_env.len(), before_env.len() + 2);
    // Ordering, from the two servers' own request logs (same clock): every ENIConfig and the
    // aws-node patch were written before CreateNodegroup was sent.
    let kube_writes: Vec<f64> = t
        .kube
        .requests()
        .iter()
        .filter(|r| {
            r["method"] != "GET"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("eniconfigs") || p.contains("daemonsets/aws-node"))
        })
        .filter_map(|r| r["unix_nanos"].as_f64().map(|n| n / 1e6))
        .collect();
    assert!(
        kube_writes.len() >= 3,
        "2 ENIConfigs and the aws-node patch written: {kube_writes:?}"
    );
    let create_ng = t.proxy.stats().of("CreateNodegroup");
    assert_eq!(create_ng.len(), 1);
    let ng_start = create_ng[0].start_ms;
    assert!(
        kube_writes.iter().all(|w| *w < ng_start),
        "Kubernetes writes {kube_writes:?} before CreateNodegroup at {ng_start}"
    );
    run_ok(t.eksnet().args(["verify", SPEC]), 0);

    // --- no changes ---
    t.proxy.reset_stats();
    t.proxy.config(json!({"latency_ms": 150}));
    let again = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);
    t.proxy.config(json!({"latency_ms": null}));
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    // The pod subnets use the stack VPC's main table, read in the same round: local only.
    for subnet in ["subnet.pod_a", "subnet.pod_b"] {
        let line = again
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("  {subnet}: ")))
            .unwrap_or_else(|| panic!("no line for {subnet}: {}", again.stdout));
        assert!(
            line.contains("the VPC's main route table rtb-")
                && line.contains("no route out of the VPC (local only)"),
            "{line}"
        );
    }
    // One round of AWS requests, everything known by id from the state at once (the stack's
    // VPC and subnets by the id the last read recorded); the cluster is described once, the
    // Kubernetes client reusing what refresh saw.
    let reads = t.proxy.stats();
    assert_eq!(reads.mutating(), 0);
    assert_eq!(reads.count("DescribeCluster"), 1, "{:?}", reads.requests());
    assert_eq!(reads.round_trips(), 1, "{:?}", reads.requests());

    // --- one tag changed in the spec: exactly one in-place update ---
    set_subnet_tag(
        d,
        "\"my-eks-custom-networking-vpc-PrivateSubnet01\"",
        "\"pods-a\"",
    );
    let changed = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 2);
    assert!(
        changed
            .stdout
            .contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{}",
        changed.stdout
    );
    assert!(changed
        .stdout
        .contains("# subnet.pod_a will be updated in place"));
    assert!(
        changed
            .stdout
            .contains("\"Name\" = \"my-eks-custom-networking-vpc-PrivateSubnet01\" -> \"pods-a\""),
        "{}",
        changed.stdout
    );
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    assert_eq!(
        tag(&by_cidr_live(&aws, &vpc_id, "192.168.1.0/27").await, "Name").as_deref(),
        Some("pods-a")
    );
    run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);

    // --- drift: a tag changed behind eksnet's back ---
    let pod_b = by_cidr_live(&aws, &vpc_id, "192.168.1.32/27").await;
    aws.ec2
        .create_tags()
        .resources(pod_b.subnet_id().expect("id"))
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("kubernetes.io/role/internal-elb")
                .value("0")
                .build(),
        )
        .send()
        .await
        .expect("tag behind eksnet's back");
    let drift = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 2);
    assert!(
        drift.stdout.contains("subnet.pod_b")
            && drift.stdout.contains("tags changed outside eksnet"),
        "{}",
        drift.stdout
    );
    assert!(drift.stdout.contains("\"0\" -> \"1\""), "{}", drift.stdout);

    // --- destroy: nothing of ours remains ---
    let destroyed = run_ok(t.eksnet().args(["destroy", SPEC, "--auto-approve"]), 0);
    let enis = t
        .kube
        .get("/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs");
    assert_eq!(
        enis["items"].as_array().map(Vec::len),
        Some(0),
        "ENIConfigs removed"
    );
    assert_eq!(
        env_of(&container(&t.kube.get(aws_node_path))),
        before_env,
        "aws-node env restored exactly"
    );
    assert!(
        destroyed.stderr.contains("Destroy complete!"),
        "{}",
        destroyed.stderr
    );
    let order: Vec<&str> = destroyed
        .stderr
        .lines()
        .filter(|l| l.ends_with(": destroy..."))
        .collect();
    let pos = |a: &str| {
        order
            .iter()
            .position(|l| l.starts_with(a))
            .unwrap_or_else(|| panic!("{a} not destroyed: {order:?}"))
    };
    assert!(
        pos("nodegroup.main") < pos("cluster.main"),
        "nodegroup before cluster"
    );
    assert!(
        pos("subnet.pod_a") < pos("cidr_block.pods")
            && pos("subnet.pod_b") < pos("cidr_block.pods"),
        "subnets before the CIDR"
    );
    assert!(
        pos("cidr_block.pods") < pos("vpc.main") && pos("cluster.main") < pos("vpc.main"),
        "stack last"
    );
    assert!(
        aws.cloudformation
            .describe_stacks()
            .stack_name("my-eks-custom-networking-vpc")
            .send()
            .await
            .is_err(),
        "stack gone"
    );
    assert!(
        aws.eks
            .describe_cluster()
            .name("my-custom-networking-cluster")
            .send()
            .await
            .is_err(),
        "cluster gone"
    );
    assert!(aws
        .eks
        .list_nodegroups()
        .cluster_name("my-custom-networking-cluster")
        .send()
        .await
        .map(|o| o.nodegroups().is_empty())
        .unwrap_or(true));
    for role in [
        "myCustomNetworkingAmazonEKSClusterRole",
        "myCustomNetworkingAmazonEKSNodeRole",
    ] {
        assert!(
            aws.iam.get_role().role_name(role).send().await.is_err(),
            "{role} gone"
        );
    }
    let left = subnets_by_cidr(&aws, &["192.168.1.0/27", "192.168.1.32/27"]).await;
    assert!(left.is_empty(), "pod subnets gone");
    // moto's DeleteStack leaves the stack's VPC behind (a moto limitation, see docs); the
    // secondary block eksnet associated must be gone from it.
    if let Ok(v) = aws.ec2.describe_vpcs().vpc_ids(&vpc_id).send().await {
        for vpc in v.vpcs() {
            assert!(!vpc
                .cidr_block_association_set()
                .iter()
                .any(|a| a.cidr_block() == Some("192.168.1.0/24")
                    && a.cidr_block_state()
                        .and_then(|s| s.state())
                        .map(|s| s.as_str())
                        == Some("associated")));
        }
    }
    let empty = run_ok(
        t.eksnet()
            .args(["plan", SPEC, "--destroy", "--detailed-exitcode"]),
        0,
    );
    assert!(empty.stdout.contains("No changes."));
}

async fn by_cidr_live(
    aws: &eksnet::cloud::aws::AwsClients,
    vpc: &str,
    cidr: &str,
) -> aws_sdk_ec2::types::Subnet {
    let out = aws
        .ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(vpc)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("cidr-block")
                .values(cidr)
                .build(),
        )
        .send()
        .await
        .expect("describe");
    out.subnets().first().cloned().expect(cidr)
}

/// A VPC made directly in moto, as a user's existing VPC would be.
async fn vpc_outside_eksnet(aws: &eksnet::cloud::aws::AwsClients, cidr: &str) -> String {
    aws.ec2
        .create_vpc()
        .cidr_block(cidr)
        .send()
        .await
        .expect("vpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string()
}

/// A small spec on an existing VPC: the VPC adopted by id, the secondary block
/// `100.64.0.0/16` and one pod subnet `100.64.0.0/19` in us-west-2a, with `subnet_extra`
/// lines added to the subnet's section. The line of `availability_zone` is 12.
fn one_pod_subnet(vpc_id: &str, subnet_extra: &str) -> String {
    format!(
        r#"
[vpc.main]
id = "{vpc_id}"

[cidr_block.pods]
vpc_id = "${{vpc.main.id}}"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "${{vpc.main.id}}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"
{subnet_extra}"#
    )
}

const ADOPTED: &str = r#"
[vpc.main]
id = "VPC_ID"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "${vpc.main.subnets.SUBNET_A.availability_zone}"

[subnet.pod_b]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.32.0/19"
availability_zone = "${vpc.main.subnets.nodes-b.availability_zone}"
"#;

#[tokio::test]
async fn adopted_vpc_is_used_and_never_deleted() {
    let (_guard, url) = moto();
    let aws = sdk(&url).await;
    let vpc_id = vpc_outside_eksnet(&aws, "10.0.0.0/16").await;
    let mk = |cidr: &'static str, az: &'static str, name: &'static str| {
        let aws = aws.clone();
        let vpc_id = vpc_id.clone();
        async move {
            aws.ec2
                .create_subnet()
                .vpc_id(vpc_id)
                .cidr_block(cidr)
                .availability_zone(az)
                .tag_specifications(
                    aws_sdk_ec2::types::TagSpecification::builder()
                        .resource_type(aws_sdk_ec2::types::ResourceType::Subnet)
                        .tags(
                            aws_sdk_ec2::types::Tag::builder()
                                .key("Name")
                                .value(name)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .expect("subnet")
                .subnet()
                .and_then(|s| s.subnet_id())
                .expect("subnet id")
                .to_string()
        }
    };
    let a = mk("10.0.1.0/24", "us-west-2a", "nodes-a").await;
    mk("10.0.2.0/24", "us-west-2b", "nodes-b").await;
    let dir = tempfile::tempdir().expect("tmp");
    let spec = ADOPTED.replace("VPC_ID", &vpc_id).replace("SUBNET_A", &a);
    std::fs::write(dir.path().join("adopt.toml"), spec).expect("write");
    let plan = run_ok(eksnet(&url, dir.path()).args(["plan", "adopt.toml"]), 0);
    assert!(
        plan.stdout
            .contains("# vpc.main will be recorded in the state"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("Plan: 3 to add"), "{}", plan.stdout);
    // AZs come from the adopted VPC's subnets (by id and by Name tag), known at plan time.
    assert!(
        plan.stdout.contains("\"us-west-2a\"") && plan.stdout.contains("\"us-west-2b\""),
        "{}",
        plan.stdout
    );
    run_ok(
        eksnet(&url, dir.path()).args(["apply", "adopt.toml", "--auto-approve"]),
        0,
    );
    run_ok(
        eksnet(&url, dir.path()).args(["plan", "adopt.toml", "--detailed-exitcode"]),
        0,
    );

    // --replace recreates one resource even without a change, and --json gives a plan value.
    let before = by_cidr_live(&aws, &vpc_id, "100.64.0.0/19").await;
    let json = run_ok(
        eksnet(&url, dir.path()).args([
            "plan",
            "adopt.toml",
            "--replace",
            "subnet.pod_a",
            "--json",
        ]),
        0,
    );
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan JSON on stdout");
    let actions: Vec<(String, String)> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| {
            (
                c["addr"].as_str().unwrap_or_default().to_string(),
                c["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![("subnet.pod_a".to_string(), "replace".to_string())]
    );
    let replaced = run_ok(
        eksnet(&url, dir.path()).args([
            "apply",
            "adopt.toml",
            "--replace",
            "subnet.pod_a",
            "--auto-approve",
        ]),
        0,
    );
    assert!(
        replaced
            .stdout
            .contains("# subnet.pod_a must be replaced (replacement requested with --replace)"),
        "{}",
        replaced.stdout
    );
    let after = by_cidr_live(&aws, &vpc_id, "100.64.0.0/19").await;
    assert_ne!(before.subnet_id(), after.subnet_id(), "a new subnet");
    run_ok(
        eksnet(&url, dir.path()).args(["plan", "adopt.toml", "--detailed-exitcode"]),
        0,
    );
    let destroy = run_ok(
        eksnet(&url, dir.path()).args(["destroy", "adopt.toml", "--auto-approve"]),
        0,
    );
    assert!(
        destroy
            .stdout
            .contains("# vpc.main will be removed from the state (no change in AWS)"),
        "{}",
        destroy.stdout
    );
    let still = aws
        .ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .expect("vpc still there");
    assert_eq!(still.vpcs().len(), 1, "adopted VPC kept");
    let blocks: Vec<_> = still.vpcs()[0]
        .cidr_block_association_set()
        .iter()
        .filter(|b| {
            b.cidr_block() == Some("100.64.0.0/16")
                && b.cidr_block_state()
                    .and_then(|s| s.state())
                    .map(|s| s.as_str())
                    == Some("associated")
        })
        .collect();
    assert!(blocks.is_empty(), "secondary block disassociated");
}

#[tokio::test]
async fn saved_plan_applies_exactly_and_is_refused_when_stale() {
    let t = tutorial();
    let d = t.dir.path();
    let url = t.proxy.url.clone();
    run_ok(t.eksnet().args(["plan", SPEC, "--out", "p1.json"]), 0);
    run_ok(t.eksnet().args(["plan", SPEC, "--out", "p2.json"]), 0);
    // Edit the spec after planning: the saved plan must apply what was planned, not the edit.
    set_subnet_tag(
        d,
        "\"my-eks-custom-networking-vpc-PrivateSubnet01\"",
        "\"edited-after-plan\"",
    );
    run_ok(t.eksnet().args(["apply", "p1.json"]), 0);
    let aws = sdk(&url).await;
    let s = subnets_by_cidr(&aws, &["192.168.1.0/27"]).await;
    let name = s[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
        .map(String::from);
    assert_eq!(
        name.as_deref(),
        Some("my-eks-custom-networking-vpc-PrivateSubnet01")
    );
    let stale = run_ok(t.eksnet().args(["apply", "p2.json"]), 1);
    assert!(
        stale.stderr.contains(
            "the saved plan is stale: it was made for no state (none existed yet), but the state is now lineage "
        ),
        "{}",
        stale.stderr
    );
}

#[tokio::test]
async fn second_apply_is_refused_while_the_state_is_locked() {
    let t = tutorial();
    let d = t.dir.path();
    let url = t.proxy.url.clone();
    std::fs::create_dir_all(d.join("state")).expect("mkdir");
    let mut store =
        eksnet::state::LocalStore::open(&d.join("state/custom-networking.db")).expect("state");
    let id = store.lock("eksnet apply (held by the test)").expect("lock");
    let refused = run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 1);
    assert!(
        refused
            .stderr
            .contains("is locked by `eksnet apply (held by the test)`"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&id),
        "lock id printed: {}",
        refused.stderr
    );
    let aws = sdk(&url).await;
    assert!(
        aws.iam
            .get_role()
            .role_name("myCustomNetworkingAmazonEKSClusterRole")
            .send()
            .await
            .is_err(),
        "nothing created while locked"
    );
    run_ok(
        t.eksnet()
            .args(["force-unlock", &id, "--state", "state/custom-networking.db"]),
        0,
    );
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
}

#[tokio::test]
async fn apply_asks_and_only_yes_proceeds() {
    let t = tutorial();
    let url = t.proxy.url.clone();
    let mut child = t
        .eksnet()
        .args(["apply", SPEC])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"no\n")
        .expect("answer");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cancelled"));
    let aws = sdk(&url).await;
    assert!(
        aws.iam
            .get_role()
            .role_name("myCustomNetworkingAmazonEKSClusterRole")
            .send()
            .await
            .is_err(),
        "nothing created"
    );
}

const INTERRUPTED: &str = r#"
[iam_role.cluster]
name = "interrupted-cluster-role"
assume_role_service = "eks.amazonaws.com"

[cluster.main]
name = "interrupted"
role_arn = "${iam_role.cluster.arn}"
subnet_ids = ["subnet-00000000000000001", "subnet-00000000000000002"]

[nodegroup.main]
cluster_name = "${cluster.main.name}"
name = "ng"
node_role_arn = "${iam_role.cluster.arn}"
subnet_ids = ["subnet-00000000000000001"]
"#;

/// A cluster that a crashed run left CREATING (found by its lineage tag) is adopted and waited
/// for: its nodegroup is only created once the cluster is ACTIVE.
#[tokio::test]
async fn cluster_found_mid_create_is_waited_for_before_its_nodegroup() {
    let (_guard, moto_url) = moto();
    let proxy = proxy::Proxy::start(&moto_url);
    proxy.config(json!({"cluster_create_ms": 2500}));
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    std::fs::write(d.join("i.toml"), INTERRUPTED).expect("write");
    let lineage = eksnet::state::LocalStore::open(&d.join("state/i.db"))
        .expect("state")
        .lineage()
        .expect("lineage");
    // What the crashed run had done: the role, then CreateCluster, both with eksnet's tags.
    let aws = sdk(&proxy.url).await;
    let tag = |k: &str, v: &str| {
        aws_sdk_iam::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .expect("tag")
    };
    let role = aws
        .iam
        .create_role()
        .role_name("interrupted-cluster-role")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
        .tags(tag("eksnet:state", &lineage))
        .tags(tag("eksnet:address", "iam_role.cluster"))
        .send()
        .await
        .expect("role");
    let role_arn = role.role().map(|r| r.arn().to_string()).expect("arn");
    aws.eks
        .create_cluster()
        .name("interrupted")
        .role_arn(&role_arn)
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-00000000000000001")
                .subnet_ids("subnet-00000000000000002")
                .build(),
        )
        .tags("eksnet:state", &lineage)
        .tags("eksnet:address", "cluster.main")
        .send()
        .await
        .expect("cluster");
    let created_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        * 1000.0;
    proxy.reset_stats();
    let out = run_ok(
        eksnet(&proxy.url, d).args(["apply", "i.toml", "--auto-approve"]),
        0,
    );
    assert!(
        out.stdout
            .contains("# cluster.main will be recorded in the state"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("# iam_role.cluster will be recorded in the state"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("cluster.main: still CREATING"),
        "waited for the cluster:\n{}",
        out.stderr
    );
    let stats = proxy.stats();
    assert_eq!(stats.count("CreateCluster"), 0, "never created twice");
    let create_ng = stats.of("CreateNodegroup");
    assert_eq!(create_ng.len(), 1);
    assert!(
        create_ng[0].start_ms >= created_ms + 2400.0,
        "CreateNodegroup {:.0} ms after CreateCluster: it must wait out the 2500 ms CREATING window",
        create_ng[0].start_ms - created_ms
    );
    run_ok(
        eksnet(&proxy.url, d).args(["plan", "i.toml", "--detailed-exitcode"]),
        0,
    );
}

/// Ctrl-C or SIGTERM during a wait stops the run like a crash would (everything started is recorded) but
/// releases the lock, so the next apply simply continues.
#[tokio::test]
async fn interrupt_releases_the_lock_and_the_next_apply_continues() {
    // Ctrl-C, and what a cancelled CI job or a plain `kill` sends.
    for signal in ["INT", "TERM"] {
        interrupted_apply_then_apply_again(signal);
    }
}

fn interrupted_apply_then_apply_again(signal: &str) {
    let (_guard, moto_url) = moto();
    let proxy = proxy::Proxy::start(&moto_url);
    proxy.config(json!({"cluster_create_ms": 4000}));
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    std::fs::write(d.join("i.toml"), INTERRUPTED).expect("write");
    let child = eksnet(&proxy.url, d)
        .args(["apply", "i.toml", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until eksnet is waiting for the cluster, then press Ctrl-C.
    let start = std::time::Instant::now();
    while proxy.stats().count("CreateCluster") == 0 {
        assert!(start.elapsed().as_secs() < 30, "CreateCluster never sent");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "SIG{signal}: {stderr}");
    assert!(
        stderr.contains(&format!("interrupted (SIG{signal})")),
        "{stderr}"
    );
    let snap = eksnet::state::LocalStore::open(&d.join("state/i.db"))
        .expect("state")
        .snapshot()
        .expect("snapshot");
    let cluster: eksnet::base::addr::ResourceAddr = "cluster.main".parse().expect("addr");
    assert!(
        snap.resources.contains_key(&cluster),
        "the started cluster is recorded"
    );
    let again = run_ok(
        eksnet(&proxy.url, d).args(["apply", "i.toml", "--auto-approve"]),
        0,
    );
    assert!(!again.stderr.contains("is locked"), "{}", again.stderr);
    assert_eq!(
        proxy.stats().count("CreateCluster"),
        1,
        "the cluster was not created twice"
    );
    run_ok(
        eksnet(&proxy.url, d).args(["plan", "i.toml", "--detailed-exitcode"]),
        0,
    );
}

/// Annotation mode: ENIConfigs with custom names, nodes annotated by rule; a node that joins
/// later is noticed by the next plan and annotated by the next apply; destroy removes the
/// annotations.
#[tokio::test]
async fn annotation_mode_annotates_nodes_and_keeps_up_with_new_ones() {
    let t = tutorial();
    let d = t.dir.path();
    let spec = std::fs::read_to_string(d.join(SPEC)).expect("spec");
    let spec = spec
        .replace("eni_config_label = \"topology.kubernetes.io/zone\"", "eni_config_selection = \"annotation\"")
        .replace(
            "subnet_id = \"${subnet.pod_a.id}\"",
            "subnet_id = \"${subnet.pod_a.id}\"\nname = \"pods-a\"\nannotate_nodes = { \"topology.kubernetes.io/zone\" = \"us-west-2a\" }",
        )
        .replace(
            "subnet_id = \"${subnet.pod_b.id}\"",
            "subnet_id = \"${subnet.pod_b.id}\"\nname = \"pods-b\"\nannotate_nodes = { \"topology.kubernetes.io/zone\" = \"us-west-2b\" }",
        );
    std::fs::write(d.join("examples/annotated.toml"), spec).expect("write");
    // Two nodes that are already there, one per AZ.
    t.kube.seed(serde_json::json!([
        ready_node("ip-192-168-0-70.us-west-2.compute.internal", "us-west-2a"),
        ready_node("ip-192-168-0-100.us-west-2.compute.internal", "us-west-2b"),
    ]));
    run_ok(
        t.eksnet()
            .args(["apply", "examples/annotated.toml", "--auto-approve"]),
        0,
    );
    let annotation = |node: &str| {
        t.kube.get(&format!("/api/v1/nodes/{node}"))["metadata"]["annotations"]
            ["k8s.amazonaws.com/eniConfig"]
            .clone()
    };
    assert_eq!(
        annotation("ip-192-168-0-70.us-west-2.compute.internal"),
        serde_json::json!("pods-a")
    );
    assert_eq!(
        annotation("ip-192-168-0-100.us-west-2.compute.internal"),
        serde_json::json!("pods-b")
    );
    let ds = t
        .kube
        .get("/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node");
    let env = ds["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(
        !env.contains("ENI_CONFIG_LABEL_DEF"),
        "annotation mode sets no label definition"
    );
    run_ok(t.eksnet().args(["verify", "examples/annotated.toml"]), 0);
    run_ok(
        t.eksnet()
            .args(["plan", "examples/annotated.toml", "--detailed-exitcode"]),
        0,
    );

    // A node joins us-west-2a later.
    t.kube.seed(serde_json::json!([{
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "ip-192-168-0-80.us-west-2.compute.internal", "labels": {"topology.kubernetes.io/zone": "us-west-2a"}},
    }]));
    let failing = run_ok(t.eksnet().args(["verify", "examples/annotated.toml"]), 3);
    assert!(
        failing.stdout.contains("ip-192-168-0-80"),
        "{}",
        failing.stdout
    );
    let plan = run_ok(
        t.eksnet()
            .args(["plan", "examples/annotated.toml", "--detailed-exitcode"]),
        2,
    );
    assert!(
        plan.stdout
            .contains("# eni_config.pod_a will be updated in place"),
        "{}",
        plan.stdout
    );
    run_ok(
        t.eksnet()
            .args(["apply", "examples/annotated.toml", "--auto-approve"]),
        0,
    );
    assert_eq!(
        annotation("ip-192-168-0-80.us-west-2.compute.internal"),
        serde_json::json!("pods-a")
    );
    run_ok(
        t.eksnet()
            .args(["plan", "examples/annotated.toml", "--detailed-exitcode"]),
        0,
    );

    run_ok(
        t.eksnet()
            .args(["destroy", "examples/annotated.toml", "--auto-approve"]),
        0,
    );
    assert_eq!(
        annotation("ip-192-168-0-70.us-west-2.compute.internal"),
        serde_json::Value::Null,
        "annotation removed"
    );
    assert_eq!(
        annotation("ip-192-168-0-80.us-west-2.compute.internal"),
        serde_json::Value::Null
    );
}

/// The original aws-node values survive losing them from the state (a crash between the patch
/// and the state write): they are also on the DaemonSet, written in the same patch.
#[tokio::test]
async fn aws_node_originals_survive_a_lost_state_record() {
    let t = tutorial();
    let d = t.dir.path();
    let path = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node";
    let env =
        |ds: &serde_json::Value| ds["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let original = env(&t.kube.get(path));
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    let live = t.kube.get(path);
    assert!(
        live["metadata"]["annotations"]["eksnet.io/previous-env"].is_string(),
        "{live}"
    );
    // Drop previous_env from the state row, as if the process died right after the patch.
    let mut store =
        eksnet::state::LocalStore::open(&d.join("state/custom-networking.db")).expect("state");
    let addr: eksnet::base::addr::ResourceAddr = "aws_node.main".parse().expect("addr");
    let mut row = store.snapshot().expect("snapshot").resources[&addr].clone();
    if let Some(m) = row.outputs.as_object_mut() {
        m.remove("previous_env");
    }
    store.put(&addr, &row).expect("put");
    drop(store);
    run_ok(t.eksnet().args(["destroy", SPEC, "--auto-approve"]), 0);
    let after = t.kube.get(path);
    assert_eq!(
        env(&after),
        original,
        "env restored from the DaemonSet's own record"
    );
    assert!(
        after["metadata"]["annotations"]["eksnet.io/previous-env"].is_null(),
        "annotation removed"
    );
}

/// Every stderr line of a `--json` command, parsed; a line that is not a JSON object fails.
fn json_lines(stderr: &str, ctx: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{ctx}: stderr line is not JSON ({e}): {l}\n{stderr}"));
            assert!(
                v["event"].is_string(),
                "{ctx}: no event name in {l}\n{stderr}"
            );
            v
        })
        .collect()
}

fn events_named<'a>(lines: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|v| v["event"] == name).collect()
}

/// With `--json`, stdout is the document and stderr is JSON lines only: progress, warnings,
/// the summary, the prompt, spec errors with file/line/key, and the final error.
#[tokio::test]
async fn json_mode_writes_only_json_lines_on_stderr() {
    let (_guard, url) = moto();
    let aws = sdk(&url).await;
    let vpc_id = vpc_outside_eksnet(&aws, "10.0.0.0/16").await;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let spec = one_pod_subnet(&vpc_id, "");
    std::fs::write(d.join("s.toml"), &spec).expect("write");

    let plan = run_ok(eksnet(&url, d).args(["plan", "s.toml", "--json"]), 0);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan JSON on stdout");
    assert!(doc["changes"].is_array(), "{}", plan.stdout);
    let lines = json_lines(&plan.stderr, "plan");
    assert_eq!(events_named(&lines, "refreshing").len(), 1, "{lines:?}");

    // Asked to confirm and told no: a prompt event, then the cancellation, exit 1.
    let mut cmd = eksnet(&url, d);
    cmd.args(["apply", "s.toml", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"no\n").expect("answer");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&String::from_utf8_lossy(&out.stderr), "cancelled apply");
    assert_eq!(events_named(&lines, "prompt").len(), 1, "{lines:?}");
    assert!(
        events_named(&lines, "info")
            .iter()
            .any(|v| v["message"] == "Cancelled: nothing was changed."),
        "{lines:?}"
    );

    let applied = run_ok(
        eksnet(&url, d).args(["apply", "s.toml", "--json", "--auto-approve"]),
        0,
    );
    let lines = json_lines(&applied.stderr, "apply");
    let finished = events_named(&lines, "finished");
    assert_eq!(finished.len(), 3, "vpc adopted, block, subnet: {lines:?}");
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["event"], "summary", "{lines:?}");
    assert_eq!(summary["command"], "apply");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["added"], 2, "{summary}");
    assert_eq!(summary["failed"], 0);

    // A spec error: the diagnostic as fields, then the failure; nothing else, exit 1.
    std::fs::write(
        d.join("bad.toml"),
        spec.replace(
            "availability_zone = \"us-west-2a\"",
            "availabilty_zone = \"us-west-2a\"",
        ),
    )
    .expect("write");
    let bad = run(eksnet(&url, d).args(["plan", "bad.toml", "--json"]));
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stdout.is_empty(), "{}", bad.stdout);
    let lines = json_lines(&bad.stderr, "bad spec");
    let diags = events_named(&lines, "diagnostic");
    assert!(!diags.is_empty(), "{lines:?}");
    assert!(
        diags.iter().any(|v| v["severity"] == "error"
            && v["location"]["line"] == 12
            && v["key"]
                .as_str()
                .is_some_and(|k| k.contains("availabilty_zone"))),
        "{diags:?}"
    );
    assert_eq!(lines.last().map(|v| &v["event"]), Some(&json!("error")));

    let destroyed = run_ok(
        eksnet(&url, d).args(["destroy", "s.toml", "--json", "--auto-approve"]),
        0,
    );
    let lines = json_lines(&destroyed.stderr, "destroy");
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["command"], "destroy", "{lines:?}");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["destroyed"], 2, "{summary}");
}

/// `eksnet import`: a subnet and a role made outside eksnet, which plan refuses to take over,
/// are recorded under their spec addresses; from then on plan, apply and destroy treat them
/// as eksnet's own. Wrong addresses, ids and repeats are refused without touching the state.
#[tokio::test]
async fn import_brings_existing_resources_under_management() {
    let (_guard, url) = moto();
    let aws = sdk(&url).await;
    let vpc_id = vpc_outside_eksnet(&aws, "10.0.0.0/16").await;
    let assoc_id = aws
        .ec2
        .associate_vpc_cidr_block()
        .vpc_id(&vpc_id)
        .cidr_block("100.64.0.0/16")
        .send()
        .await
        .expect("block")
        .cidr_block_association()
        .and_then(|a| a.association_id())
        .expect("association id")
        .to_string();
    let subnet_id = aws
        .ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("100.64.0.0/19")
        .availability_zone("us-west-2a")
        .send()
        .await
        .expect("subnet")
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_string();
    aws.iam
        .create_role()
        .role_name("imported-node-role")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("role");
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let spec = one_pod_subnet(
        &vpc_id,
        r#"tags = { Name = "pods-a" }

[iam_role.node]
name = "imported-node-role"
assume_role_service = "ec2.amazonaws.com"
"#,
    );
    std::fs::write(d.join("s.toml"), &spec).expect("write");

    // Before: eksnet will not take them over.
    let refused = run(eksnet(&url, d).args(["plan", "s.toml"]));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("already exists and was created outside eksnet"),
        "{}",
        refused.stderr
    );

    // Refusals that leave nothing behind.
    for (args, says) in [
        (
            vec!["import", "s.toml", "subnet.other", &subnet_id],
            "`subnet.other` is not in",
        ),
        (
            vec![
                "import",
                "s.toml",
                "subnet.pod_a",
                "subnet-00000000000000000",
            ],
            "no subnet with id `subnet-00000000000000000` was found",
        ),
        (
            vec!["import", "s.toml", "vpc.main", &vpc_id],
            "adopts its VPC by `id` already",
        ),
    ] {
        let r = run(eksnet(&url, d).args(&args));
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    let db = d.join("state/s.db");
    assert!(
        !db.exists() || run_ok(eksnet(&url, d).args(["plan", "s.toml"]), 1).code == 1,
        "a refused import records nothing"
    );

    let imported = run_ok(
        eksnet(&url, d).args(["import", "s.toml", "subnet.pod_a", &subnet_id]),
        0,
    );
    assert!(
        imported
            .stderr
            .contains(&format!("Imported subnet.pod_a [id={subnet_id}]")),
        "{}",
        imported.stderr
    );
    // The spec adds a Name tag the subnet does not have: an update, said at once.
    assert!(
        imported.stderr.contains("would update it in place"),
        "{}",
        imported.stderr
    );
    run_ok(
        eksnet(&url, d).args(["import", "s.toml", "iam_role.node", "imported-node-role"]),
        0,
    );
    // Read by its association id, which needs the VPC id resolved from the spec.
    run_ok(
        eksnet(&url, d).args(["import", "s.toml", "cidr_block.pods", &assoc_id]),
        0,
    );
    let again =
        run(eksnet(&url, d).args(["import", "s.toml", "iam_role.node", "imported-node-role"]));
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("already in the state"),
        "{}",
        again.stderr
    );
    // The same role under a second address of a spec sharing this state: refused too, or
    // one role would be changed and deleted for either address.
    std::fs::write(
        d.join("s2.toml"),
        format!("{spec}\n[iam_role.second]\nname = \"second-role\"\nassume_role_service = \"ec2.amazonaws.com\"\n"),
    )
    .expect("write");
    let twice = run(eksnet(&url, d).args([
        "import",
        "s2.toml",
        "iam_role.second",
        "imported-node-role",
        "--state",
        "state/s.db",
    ]));
    assert_eq!(twice.code, 1, "{}", twice.stderr);
    assert!(
        twice
            .stderr
            .contains("iam_role `imported-node-role` is already in the state as `iam_role.node`"),
        "{}",
        twice.stderr
    );

    // Now a plan: the tag is the only difference, and applying it keeps the same subnet.
    let plan = run_ok(
        eksnet(&url, d).args(["plan", "s.toml", "--detailed-exitcode"]),
        2,
    );
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{}",
        plan.stdout
    );
    assert!(plan
        .stdout
        .contains("# subnet.pod_a will be updated in place"));
    run_ok(
        eksnet(&url, d).args(["apply", "s.toml", "--auto-approve"]),
        0,
    );
    let subnets = aws
        .ec2
        .describe_subnets()
        .subnet_ids(&subnet_id)
        .send()
        .await
        .expect("describe");
    let name = subnets.subnets()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value());
    assert_eq!(
        name,
        Some("pods-a"),
        "the imported subnet itself was tagged"
    );
    run_ok(
        eksnet(&url, d).args(["plan", "s.toml", "--detailed-exitcode"]),
        0,
    );

    // Managed now: destroy deletes all three.
    run_ok(
        eksnet(&url, d).args(["destroy", "s.toml", "--auto-approve"]),
        0,
    );
    let gone = aws
        .ec2
        .describe_subnets()
        .subnet_ids(&subnet_id)
        .send()
        .await;
    assert!(
        gone.map(|o| o.subnets().is_empty()).unwrap_or(true),
        "imported subnet deleted by destroy"
    );
    assert!(
        aws.iam
            .get_role()
            .role_name("imported-node-role")
            .send()
            .await
            .is_err(),
        "imported role deleted by destroy"
    );
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .expect("vpc");
    assert!(
        vpcs.vpcs()[0]
            .cidr_block_association_set()
            .iter()
            .all(|a| a.association_id() != Some(assoc_id.as_str())
                || a.cidr_block_state()
                    .and_then(|s| s.state())
                    .map(|s| s.as_str())
                    == Some("disassociated")),
        "imported block disassociated by destroy"
    );
}

/// `eksnet state list|show|rm`: what the state holds, and forgetting resources without
/// touching them: after `state rm` and removing them from the spec, destroy leaves them be.
#[tokio::test]
async fn state_commands_list_show_and_forget() {
    let (_guard, url) = moto();
    let aws = sdk(&url).await;
    let vpc_id = vpc_outside_eksnet(&aws, "10.0.0.0/16").await;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    std::fs::write(d.join("s.toml"), one_pod_subnet(&vpc_id, "")).expect("write");
    run_ok(
        eksnet(&url, d).args(["apply", "s.toml", "--auto-approve"]),
        0,
    );

    let list = run_ok(eksnet(&url, d).args(["state", "list"]), 0);
    let rows: Vec<Vec<&str>> = list
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{}", list.stdout);
    assert!(rows
        .iter()
        .any(|r| r[..2] == ["vpc.main", "present"] && r[2] == vpc_id));
    let subnet_id = rows
        .iter()
        .find(|r| r[0] == "subnet.pod_a")
        .map(|r| r[2].to_string())
        .expect("subnet row");
    assert!(subnet_id.starts_with("subnet-"), "{subnet_id}");
    let json = run_ok(eksnet(&url, d).args(["state", "list", "--json"]), 0);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{rows}");
    let show = run_ok(eksnet(&url, d).args(["state", "show", "subnet.pod_a"]), 0);
    let row: serde_json::Value = serde_json::from_str(&show.stdout).expect("JSON");
    assert_eq!(row["cloud_id"], json!(subnet_id));
    assert_eq!(row["attrs"]["cidr_block"], "100.64.0.0/19");
    assert_eq!(row["outputs"]["availability_zone"], "us-west-2a", "{row}");

    // All or nothing: one unknown address, nothing removed.
    let typo = run(eksnet(&url, d).args(["state", "rm", "subnet.pod_a", "subnet.pod_z"]));
    assert_eq!(typo.code, 1);
    assert!(
        typo.stderr.contains("`subnet.pod_z` is not in the state"),
        "{}",
        typo.stderr
    );
    run_ok(eksnet(&url, d).args(["state", "show", "subnet.pod_a"]), 0);

    let rm = run_ok(
        eksnet(&url, d).args(["state", "rm", "subnet.pod_a", "cidr_block.pods"]),
        0,
    );
    assert!(
        rm.stderr
            .contains(&format!("Removed subnet.pod_a [id={subnet_id}]")),
        "{}",
        rm.stderr
    );
    std::fs::write(d.join("s.toml"), format!("[vpc.main]\nid = \"{vpc_id}\"\n")).expect("write");
    let plan = run_ok(
        eksnet(&url, d).args(["plan", "s.toml", "--detailed-exitcode"]),
        0,
    );
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    run_ok(
        eksnet(&url, d).args(["destroy", "s.toml", "--auto-approve"]),
        0,
    );
    let still = aws
        .ec2
        .describe_subnets()
        .subnet_ids(&subnet_id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        still.subnets().len(),
        1,
        "a forgotten subnet is left in AWS"
    );
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .expect("vpc");
    assert!(
        vpcs.vpcs()[0]
            .cidr_block_association_set()
            .iter()
            .any(|a| a.cidr_block() == Some("100.64.0.0/16")
                && a.cidr_block_state()
                    .and_then(|s| s.state())
                    .map(|s| s.as_str())
                    == Some("associated")),
        "a forgotten block stays associated"
    );
}

/// Kubeconfig access without `--kube-context`: each cluster's own context (named after its
/// ARN or its name), never the current context just because it is current — here the current
/// one points at a port where nothing listens, as if it were another cluster.
#[tokio::test]
async fn kubeconfig_context_is_the_clusters_own_not_the_current_one() {
    let t = tutorial();
    let d = t.dir.path();
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    let aws = sdk(&t.proxy.url).await;
    let arn = aws
        .eks
        .describe_cluster()
        .name("my-custom-networking-cluster")
        .send()
        .await
        .expect("cluster")
        .cluster()
        .and_then(|c| c.arn())
        .expect("arn")
        .to_string();
    let kubeconfig = |extra_context: Option<&str>| {
        let mut contexts =
            vec![json!({"name": "prod", "context": {"cluster": "prod", "user": "u"}})];
        if let Some(name) = extra_context {
            contexts.push(json!({"name": name, "context": {"cluster": "fake", "user": "u"}}));
        }
        let doc = json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "prod",
            "clusters": [
                {"name": "prod", "cluster": {"server": "http://127.0.0.1:9"}},
                {"name": "fake", "cluster": {"server": t.kube.url}},
            ],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": contexts,
        });
        let path = d.join(format!("kubeconfig-{}", extra_context.map_or(0, str::len)));
        std::fs::write(&path, doc.to_string()).expect("write kubeconfig");
        path
    };
    let plan = |path: &Path| {
        let mut c = eksnet(&t.proxy.url, d);
        c.env("EKSNET_KUBECONFIG", path)
            .args(["plan", SPEC, "--detailed-exitcode"]);
        run(&mut c)
    };

    // No context for the cluster: refused, without a Kubernetes request anywhere.
    let before = t.kube.requests().len();
    let refused = plan(&kubeconfig(None));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("the kubeconfig has no context for this EKS cluster")
            && refused
                .stderr
                .contains("current context `prod` points at http://127.0.0.1:9"),
        "{}",
        refused.stderr
    );
    assert_eq!(t.kube.requests().len(), before, "no Kubernetes request");

    // A context named after the cluster, or after its ARN: that one, not `prod`.
    for name in ["my-custom-networking-cluster", arn.as_str()] {
        let ok = plan(&kubeconfig(Some(name)));
        assert_eq!(ok.code, 0, "context {name}\n{}\n{}", ok.stdout, ok.stderr);
        assert!(ok.stdout.contains("No changes."), "{}", ok.stdout);
    }
    assert!(t.kube.requests().len() > before, "the fake was asked");

    // A context named explicitly that the file does not have: said so, with those it has.
    let mut c = eksnet(&t.proxy.url, d);
    c.env("EKSNET_KUBECONFIG", kubeconfig(None))
        .args(["plan", SPEC, "--kube-context", "nope"]);
    let missing = run(&mut c);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("the kubeconfig has no context `nope` (it has: prod)"),
        "{}",
        missing.stderr
    );
}

/// The stack's VPC is read with the id the state recorded, together with the stack; when the
/// stack now has another VPC (recreated outside eksnet), that guess must be dropped and the
/// new VPC read: the plan then shows the pod subnets moving to it, not "no changes".
#[tokio::test]
async fn a_stack_whose_vpc_changed_is_read_again_not_taken_from_the_state() {
    let t = tutorial();
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    let aws = sdk(&t.proxy.url).await;
    let stack = "my-eks-custom-networking-vpc";
    let vpc_of = |res: &aws_sdk_cloudformation::operation::describe_stack_resources::DescribeStackResourcesOutput| {
        res.stack_resources()
            .iter()
            .find(|r| r.logical_resource_id() == Some("VPC"))
            .and_then(|r| r.physical_resource_id())
            .map(String::from)
            .expect("VPC resource")
    };
    let old = vpc_of(
        &aws.cloudformation
            .describe_stack_resources()
            .stack_name(stack)
            .send()
            .await
            .expect("resources"),
    );
    // Recreated outside eksnet under the same name and parameters (moto keeps the old VPC, so
    // the guess still finds a VPC: only the comparison with the stack's resources catches it).
    let _ = aws
        .cloudformation
        .delete_stack()
        .stack_name(stack)
        .send()
        .await;
    let template = std::fs::read_to_string(t.dir.path().join("examples/vpc-private-subnets.yaml"))
        .expect("template");
    let param = |k: &str, v: &str| {
        aws_sdk_cloudformation::types::Parameter::builder()
            .parameter_key(k)
            .parameter_value(v)
            .build()
    };
    aws.cloudformation
        .create_stack()
        .stack_name(stack)
        .template_body(template)
        .parameters(param("VpcBlock", "192.168.0.0/24"))
        .parameters(param("PublicSubnet01Block", "192.168.0.0/27"))
        .parameters(param("PublicSubnet02Block", "192.168.0.32/27"))
        .parameters(param("PrivateSubnet01Block", "192.168.0.64/27"))
        .parameters(param("PrivateSubnet02Block", "192.168.0.96/27"))
        .parameters(param("AvailabilityZone01", "us-west-2a"))
        .parameters(param("AvailabilityZone02", "us-west-2b"))
        .send()
        .await
        .expect("recreate stack");
    let new = vpc_of(
        &aws.cloudformation
            .describe_stack_resources()
            .stack_name(stack)
            .send()
            .await
            .expect("resources"),
    );
    assert_ne!(old, new);
    let plan = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 2);
    assert!(
        plan.stdout.contains("# subnet.pod_a must be replaced")
            && plan
                .stdout
                .contains(&format!("\"{old}\" -> \"{new}\" # forces replacement")),
        "the pod subnets move to the new VPC {new}:\n{}",
        plan.stdout
    );
}

/// A spec of a test's own, in a scratch copy of `examples/` (which holds the CloudFormation
/// template), run against moto.
struct OwnSpec {
    _guard: MotoGuard,
    url: String,
    aws: eksnet::cloud::aws::AwsClients,
    dir: tempfile::TempDir,
    path: String,
}

impl OwnSpec {
    async fn new(name: &str) -> OwnSpec {
        let (guard, url) = moto();
        let aws = sdk(&url).await;
        OwnSpec {
            _guard: guard,
            url,
            aws,
            dir: example_dir(),
            path: format!("examples/{name}"),
        }
    }

    fn write(&self, text: &str) {
        std::fs::write(self.dir.path().join(&self.path), text).expect("write spec");
    }

    /// `apply`/`destroy` with `--auto-approve`, `plan` with `--detailed-exitcode`; the exit
    /// code must be `code`.
    fn run(&self, command: &str, code: i32) -> Run {
        let flag = if command == "plan" {
            "--detailed-exitcode"
        } else {
            "--auto-approve"
        };
        run_ok(
            eksnet(&self.url, self.dir.path()).args([command, &self.path, flag]),
            code,
        )
    }
}

/// A stack's parameters: changing one is an in-place update, and so is removing one, which
/// gives it back the template's `Default` (CloudFormation's rule for a parameter not sent).
/// Parameters never listed are not compared, so the template's defaults are no drift.
#[tokio::test]
async fn removing_a_stack_parameter_puts_the_templates_default_back() {
    let t = OwnSpec::new("net.toml").await;
    let write = |params: &str| {
        t.write(&format!(
            "[vpc.net]\nstack_name = \"params-vpc\"\ntemplate_file = \"vpc-private-subnets.yaml\"\nparameters = {{ {params} }}\n"
        ))
    };
    let azs = r#"AvailabilityZone01 = "us-west-2a", AvailabilityZone02 = "us-west-2b""#;
    let stack_params = || async {
        let out = t
            .aws
            .cloudformation
            .describe_stacks()
            .stack_name("params-vpc")
            .send()
            .await
            .expect("describe stack");
        let stack = out.stacks().first().cloned().expect("the stack");
        stack
            .parameters()
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap_or_default().to_string(),
                    p.parameter_value().unwrap_or_default().to_string(),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };

    write(&format!(
        r#"{azs}, PublicSubnet02Block = "192.168.0.48/28""#
    ));
    t.run("apply", 0);
    assert_eq!(
        stack_params().await["PublicSubnet02Block"],
        "192.168.0.48/28"
    );
    // The template's other parameters took their defaults: not a difference.
    t.run("plan", 0);

    write(azs);
    let plan = t.run("plan", 2);
    assert!(
        plan.stdout.contains("# vpc.net will be updated in place")
            && plan
                .stdout
                .contains(r#"- "PublicSubnet02Block" = "192.168.0.48/28""#),
        "{}",
        plan.stdout
    );
    t.run("apply", 0);
    assert_eq!(
        stack_params().await["PublicSubnet02Block"],
        "192.168.0.32/27",
        "the template's Default"
    );
    t.run("plan", 0);
    t.run("destroy", 0);
}

/// Two ENIConfigs named after their subnets' AZs, which only AWS knows, turn out to be one
/// name: the second is refused at apply, before it overwrites the first, and what depends on
/// it is skipped. The next plan says why from the start.
#[tokio::test]
async fn two_eni_configs_that_resolve_to_one_name_are_refused_at_apply() {
    let t = tutorial();
    let d = t.dir.path();
    // pod_b in the first private subnet's AZ too: both ENIConfigs default to that AZ's name.
    set_subnet_tag(
        d,
        "availability_zone = \"${vpc.main.subnets.PrivateSubnet02.availability_zone}\"",
        "availability_zone = \"${vpc.main.subnets.PrivateSubnet01.availability_zone}\"",
    );
    run_ok(t.eksnet().args(["validate", SPEC]), 0);
    let apply = run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 1);
    assert!(
        apply.stderr.contains("are the same eni_config (`my-custom-networking-cluster/us-west-2a`): nothing was created"),
        "{}",
        apply.stderr
    );
    assert!(apply.stderr.contains("nodegroup.main"), "{}", apply.stderr);

    let items = t
        .kube
        .get("/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs");
    let names: Vec<&str> = items["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["us-west-2a"]);
    let snap = eksnet::state::LocalStore::open(&d.join("state/custom-networking.db"))
        .expect("state")
        .snapshot()
        .expect("snapshot");
    let eni_rows: Vec<String> = snap
        .resources
        .keys()
        .filter(|a| a.kind == eksnet::base::addr::Kind::EniConfig)
        .map(|a| a.to_string())
        .collect();
    assert_eq!(eni_rows.len(), 1, "one ENIConfig, one row: {eni_rows:?}");

    let plan = run_ok(t.eksnet().args(["plan", SPEC]), 1);
    assert!(
        plan.stderr
            .contains("both resolve to the ENIConfig `us-west-2a`"),
        "{}",
        plan.stderr
    );
}

/// An optional field added to an existing resource is applied, although AWS leaves it out
/// of its answers while it is unset (IAM's role description): not recorded as applied
/// without a request.
#[tokio::test]
async fn an_optional_field_added_later_is_applied() {
    let t = OwnSpec::new("role.toml").await;
    let write = |extra: &str| {
        t.write(&format!(
            "[iam_role.r]\nname = \"late-description\"\nassume_role_service = \"eks.amazonaws.com\"\n{extra}"
        ))
    };
    write("");
    t.run("apply", 0);
    write("description = \"cluster role\"\n");
    let plan = t.run("plan", 2);
    assert!(
        plan.stdout
            .contains("# iam_role.r will be updated in place")
            && plan.stdout.contains("description"),
        "{}",
        plan.stdout
    );
    t.run("apply", 0);
    let role = t
        .aws
        .iam
        .get_role()
        .role_name("late-description")
        .send()
        .await
        .expect("get role");
    assert_eq!(
        role.role().and_then(|r| r.description()),
        Some("cluster role")
    );
    t.run("plan", 0);
}

/// `lifecycle`: a nodegroup scaled behind eksnet's back (as the cluster autoscaler does) is
/// left alone when `scaling.desired_size` is ignored, and a protected nodegroup survives both
/// a removed block (the state remembers the protection) and `destroy`.
#[tokio::test]
async fn lifecycle_ignores_autoscaled_size_and_protects_from_destroy() {
    let t = tutorial();
    let d = t.dir.path();
    let aws = sdk(&t.proxy.url).await;
    let spec_path = d.join(SPEC);
    let original = std::fs::read_to_string(&spec_path).expect("read spec");
    let lifecycle = "\n[nodegroup.main.lifecycle]\nignore_changes = [\"scaling.desired_size\"]\nprevent_destroy = true\n";
    std::fs::write(&spec_path, format!("{original}{lifecycle}")).expect("write spec");
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);

    let cluster = "my-custom-networking-cluster";
    let desired = |n: i32| {
        aws.eks
            .update_nodegroup_config()
            .cluster_name(cluster)
            .nodegroup_name("my-nodegroup")
            .scaling_config(
                aws_sdk_eks::types::NodegroupScalingConfig::builder()
                    .min_size(1)
                    .max_size(2)
                    .desired_size(n)
                    .build(),
            )
            .send()
    };
    desired(1).await.expect("scale down");
    let plan = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    // Another change to the nodegroup still goes out, with the live desired size.
    std::fs::write(
        &spec_path,
        format!("{original}labels = {{ team = \"net\" }}\n{lifecycle}"),
    )
    .expect("write spec");
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    let ng = aws
        .eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name("my-nodegroup")
        .send()
        .await
        .expect("nodegroup");
    let ng = ng.nodegroup().expect("nodegroup");
    assert_eq!(
        ng.scaling_config().and_then(|s| s.desired_size()),
        Some(1),
        "desired size left as the autoscaler set it"
    );
    assert_eq!(
        ng.labels().and_then(|l| l.get("team")).map(String::as_str),
        Some("net")
    );

    // The block removed: the state's protection refuses the delete.
    let without = original
        .split("# Step 11:")
        .next()
        .expect("spec before the nodegroup")
        .to_string();
    std::fs::write(&spec_path, &without).expect("write spec");
    let refused = run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 1);
    assert!(
        refused
            .stderr
            .contains("`nodegroup.main` is protected by the state"),
        "{}",
        refused.stderr
    );
    // And `destroy` with the block back, still protected.
    std::fs::write(&spec_path, format!("{original}{lifecycle}")).expect("write spec");
    let refused = run_ok(t.eksnet().args(["destroy", SPEC, "--auto-approve"]), 1);
    assert!(
        refused
            .stderr
            .contains("has `lifecycle.prevent_destroy = true` and this plan would destroy it"),
        "{}",
        refused.stderr
    );
    let listed = aws
        .eks
        .list_nodegroups()
        .cluster_name(cluster)
        .send()
        .await
        .expect("nodegroups");
    assert_eq!(listed.nodegroups(), ["my-nodegroup"], "nothing deleted");

    // Lifted in the spec and applied: the state forgets the protection, destroy goes ahead.
    std::fs::write(
        &spec_path,
        format!("{original}\n[nodegroup.main.lifecycle]\nprevent_destroy = false\n"),
    )
    .expect("write spec");
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    std::fs::write(&spec_path, &without).expect("write spec");
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    let listed = aws
        .eks
        .list_nodegroups()
        .cluster_name(cluster)
        .send()
        .await
        .expect("nodegroups");
    assert!(listed.nodegroups().is_empty(), "{:?}", listed.nodegroups());
}

/// Node sizing in the plan, from moto's `DescribeInstanceTypes`: max pods of the tutorial's
/// t3.medium under custom networking (12, not the 17 of default networking), and the pod
/// subnets' room per AZ, counted from their CIDRs before the first apply and from
/// `AvailableIpAddressCount` after it; a pod subnet too small for `max_size` is a warning
/// naming the AZ and the shortfall, and `--json` carries the same numbers.
#[tokio::test]
async fn plan_shows_max_pods_and_pod_subnet_capacity() {
    let t = tutorial();
    let d = t.dir.path();
    let plan = run_ok(t.eksnet().args(["plan", SPEC]), 0);
    let out = &plan.stdout;
    assert!(
        out.contains("Node sizing for cluster my-custom-networking-cluster (custom networking):"),
        "{out}"
    );
    assert!(
        out.contains("nodegroup.main: max pods 12 per node (t3.medium 12), up to 2 nodes"),
        "{out}"
    );
    // Before the first apply the AZs are known after apply (references to the stack's
    // subnets): one row per pod subnet. A /27 has 32 addresses, 5 reserved by AWS; one node
    // per AZ takes 2 ENIs' worth: 2 × 5 secondary addresses plus each ENI's own.
    let row = |az: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(az))
            .unwrap_or_else(|| panic!("no row for {az}:\n{out}"))
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("(AZ")[3..],
        ["subnet.pod_a", "27", "1", "12", "ok"],
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with("(AZ of subnet.pod_"))
            .count(),
        2,
        "{out}"
    );

    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    // Room for every node at max size: the check a schedule runs passes.
    run_ok(
        t.eksnet().args(["capacity", SPEC, "--detailed-exitcode"]),
        0,
    );
    let plan = run_ok(t.eksnet().args(["plan", SPEC, "--json"]), 0);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    let cluster = &json["sizing"]["clusters"][0];
    assert_eq!(cluster["cluster"], "my-custom-networking-cluster");
    assert_eq!(cluster["mode"]["custom_networking"], true);
    assert_eq!(cluster["nodegroups"][0]["pods"]["effective"], 12);
    let zones = cluster["capacity"]["zones"].as_array().expect("zones");
    assert_eq!(zones.len(), 2, "{zones:?}");
    // Now from DescribeSubnets: what moto says is free, not computed from the CIDR.
    let aws = sdk(&t.proxy.url).await;
    for z in zones {
        let label = z["subnets"][0].as_str().expect("label");
        let cidr = if label == "subnet.pod_a" {
            "192.168.1.0/27"
        } else {
            "192.168.1.32/27"
        };
        let f = aws_sdk_ec2::types::Filter::builder()
            .name("cidr-block")
            .values(cidr)
            .build();
        let subnets = aws
            .ec2
            .describe_subnets()
            .filters(f)
            .send()
            .await
            .expect("subnets");
        let free = subnets.subnets()[0]
            .available_ip_address_count()
            .expect("count");
        assert_eq!(z["free"], free, "{z}");
        assert_eq!(z["estimate"], false);
    }

    // Too small for what the nodegroup may grow to: a warning with the numbers.
    let spec_path = d.join(SPEC);
    let text = std::fs::read_to_string(&spec_path).expect("spec");
    let text = text.replace(
            "instance_types = [\"t3.medium\"]",
            "instance_types = [\"t3.medium\"]\nscaling = { min_size = 1, max_size = 10, desired_size = 2 }",
        );
    std::fs::write(&spec_path, text).expect("write spec");
    let plan = run_ok(t.eksnet().args(["plan", SPEC]), 0);
    // 10 nodes over 2 AZs: 5 in us-west-2a × 12 addresses = 60 against 27 free in a /27.
    assert!(
        plan.stderr.contains("us-west-2a") && plan.stderr.contains("short by 33"),
        "{}",
        plan.stderr
    );
    let row = plan
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("us-west-2a"))
        .unwrap_or_else(|| panic!("{}", plan.stdout))
        .to_string();
    assert!(row.contains("short by 33"), "{row}");
    // `eksnet capacity` prints the same table alone, and the numbers under --json.
    let cap = run_ok(t.eksnet().args(["capacity", SPEC]), 0);
    assert!(!cap.stdout.contains("will perform"), "{}", cap.stdout);
    assert!(
        cap.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("us-west-2a") && l.contains("short by 33")),
        "{}",
        cap.stdout
    );
    // A shortfall is a warning (exit 0) unless the caller asks for the detailed exit code.
    let short = run_ok(
        t.eksnet().args(["capacity", SPEC, "--detailed-exitcode"]),
        2,
    );
    assert!(short.stdout.contains("short by 33"), "{}", short.stdout);
    let cap = run_ok(t.eksnet().args(["capacity", SPEC, "--json"]), 0);
    let json: serde_json::Value = serde_json::from_str(&cap.stdout).expect("capacity json");
    let zone = json["clusters"][0]["capacity"]["zones"]
        .as_array()
        .and_then(|z| z.iter().find(|z| z["az"] == "us-west-2a"))
        .cloned()
        .expect("us-west-2a");
    assert_eq!(
        (
            zone["nodes"].as_u64(),
            zone["demand"].as_u64(),
            zone["shortfall"].as_u64()
        ),
        (Some(5), Some(60), Some(33))
    );
}

/// The nodegroups of the example's cluster as (name, status), asked through the SDK.
async fn nodegroups(aws: &eksnet::cloud::aws::AwsClients) -> Vec<(String, String)> {
    let cluster = "my-custom-networking-cluster";
    let names = aws
        .eks
        .list_nodegroups()
        .cluster_name(cluster)
        .send()
        .await
        .expect("list nodegroups")
        .nodegroups()
        .to_vec();
    let mut out = Vec::new();
    for n in names {
        let ng = aws
            .eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(&n)
            .send()
            .await;
        // Gone between the list and the describe: it is not there.
        if let Some(ng) = ng.ok().and_then(|o| o.nodegroup) {
            let status = ng
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            out.push((n, status));
        }
    }
    out.sort();
    out
}

/// A nodegroup that must be replaced is replaced create-before-destroy: while the apply runs,
/// a watcher asking EKS through the SDK always finds an ACTIVE nodegroup; the new one is
/// named beside the old (`-cbd`), the state follows it, the plan is clean after, and the next
/// replacement takes the spec's name back.
#[tokio::test]
async fn a_replaced_nodegroup_is_active_before_the_old_one_is_deleted() {
    let t = tutorial();
    let d = t.dir.path();
    let aws = sdk(&t.proxy.url).await;
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    assert_eq!(
        nodegroups(&aws).await,
        vec![("my-nodegroup".to_string(), "ACTIVE".to_string())]
    );
    // Windows long enough for the watcher to see each phase.
    t.proxy
        .config(json!({"nodegroup_create_ms": 1500, "nodegroup_delete_ms": 1500}));
    set_subnet_tag(
        d,
        "instance_types = [\"t3.medium\"]",
        "instance_types = [\"m5.large\"]",
    );
    let plan = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 2);
    assert!(
        plan.stdout.contains("+/- nodegroup.main") && plan.stdout.contains("create before destroy"),
        "{}",
        plan.stdout
    );

    // Apply while watching.
    let replace = |args: &[&str]| {
        let mut cmd = t.eksnet();
        cmd.args(args);
        tokio::task::spawn_blocking(move || run(&mut cmd))
    };
    let watch = |aws: eksnet::cloud::aws::AwsClients, apply: tokio::task::JoinHandle<Run>| async move {
        let mut seen = Vec::new();
        while !apply.is_finished() {
            let now = nodegroups(&aws).await;
            if !seen.contains(&now) {
                seen.push(now);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        (apply.await.expect("apply task"), seen)
    };
    let (applied, seen) = watch(aws.clone(), replace(&["apply", SPEC, "--auto-approve"])).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    for state in &seen {
        assert!(
            state.iter().any(|(_, s)| s == "ACTIVE"),
            "a moment without an ACTIVE nodegroup: {state:?} (all seen: {seen:#?})"
        );
    }
    // Both existed at once: the new one was made while the old one still stood.
    assert!(
        seen.iter().any(|s| s.len() == 2),
        "never saw both nodegroups: {seen:#?}"
    );
    let after = nodegroups(&aws).await;
    assert_eq!(
        after,
        vec![("my-nodegroup-cbd".to_string(), "ACTIVE".to_string())]
    );
    let ng = described_nodegroup(&aws, "my-custom-networking-cluster", "my-nodegroup-cbd").await;
    assert_eq!(ng.instance_types(), ["m5.large".to_string()]);
    assert_eq!(
        ng.tags()
            .and_then(|t| t.get("eksnet:name"))
            .map(String::as_str),
        Some("my-nodegroup")
    );
    let snap = eksnet::state::LocalStore::open(&d.join("state/custom-networking.db"))
        .expect("state")
        .snapshot()
        .expect("snapshot");
    let row = &snap.resources[&"nodegroup.main".parse().expect("addr")];
    assert_eq!(
        row.cloud_id.as_deref(),
        Some("my-custom-networking-cluster/my-nodegroup-cbd")
    );
    assert!(row.deposed.is_empty(), "{:?}", row.deposed);
    assert_eq!(row.outputs["name"], "my-nodegroup-cbd");
    run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);

    // A forgotten row (`state rm`, a lost row) is found again under the replacement's name:
    // the lookup by natural key reads `-cbd` too, and takes it by its `eksnet:name` tag
    // rather than creating a second nodegroup under the spec's name.
    run_ok(t.eksnet().args(["state", "rm", "nodegroup.main"]), 0);
    let plan = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 2);
    assert!(
        plan.stdout
            .contains("nodegroup.main will be recorded in the state (no change in AWS)")
            && !plan.stdout.contains("+ nodegroup.main"),
        "{}",
        plan.stdout
    );
    t.apply_changes_nothing_in_aws();
    let snap = eksnet::state::LocalStore::open(&d.join("state/custom-networking.db"))
        .expect("state")
        .snapshot()
        .expect("snapshot");
    assert_eq!(
        snap.resources[&"nodegroup.main".parse().expect("addr")]
            .cloud_id
            .as_deref(),
        Some("my-custom-networking-cluster/my-nodegroup-cbd")
    );
    run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);

    // The next replacement goes back to the spec's name, again without a gap.
    let (again, seen) = watch(
        aws.clone(),
        replace(&[
            "apply",
            SPEC,
            "--auto-approve",
            "--replace",
            "nodegroup.main",
        ]),
    )
    .await;
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        seen.iter().all(|s| s.iter().any(|(_, st)| st == "ACTIVE")),
        "{seen:#?}"
    );
    assert_eq!(
        nodegroups(&aws).await,
        vec![("my-nodegroup".to_string(), "ACTIVE".to_string())]
    );
    run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);
}

const TEMPLATE: &str = "eksnet-my-custom-networking-cluster-my-nodegroup";

/// The default version of eksnet's launch template as EC2 has it, through the SDK: (template
/// id, default version number, user data decoded).
async fn launch_template(aws: &eksnet::cloud::aws::AwsClients) -> Option<(String, i64, String)> {
    use base64::Engine as _;
    let t = aws
        .ec2
        .describe_launch_templates()
        .launch_template_names(TEMPLATE)
        .send()
        .await
        .ok()?
        .launch_templates()
        .first()
        .cloned()?;
    let v = aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_name(TEMPLATE)
        .versions("$Default")
        .send()
        .await
        .expect("describe launch template versions");
    let data = v.launch_template_versions()[0]
        .launch_template_data()
        .and_then(|d| d.user_data())
        .expect("user data");
    let text = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("user data is base64");
    Some((
        t.launch_template_id().expect("id").to_string(),
        t.default_version_number().expect("default version"),
        String::from_utf8(text).expect("utf-8 user data"),
    ))
}

/// The names of every launch template eksnet made (`eksnet-…`), through the SDK.
async fn eksnet_templates(aws: &eksnet::cloud::aws::AwsClients) -> Vec<String> {
    let mut names: Vec<String> = aws
        .ec2
        .describe_launch_templates()
        .send()
        .await
        .expect("describe launch templates")
        .launch_templates()
        .iter()
        .filter_map(|t| t.launch_template_name())
        .filter(|n| n.starts_with("eksnet-"))
        .map(String::from)
        .collect();
    names.sort();
    names
}

/// `max_pods` on the nodegroup: eksnet makes a launch template whose user data gives the
/// kubelet that value (AL2023 NodeConfig), creates the nodegroup on it, moves the nodegroup to
/// a new version when `max_pods` changes, refuses a value the ENIs cannot give, and deletes
/// the template on destroy. Checked through the SDK against moto's launch templates, with
/// UpdateNodegroupVersion answered by the proxy (moto lacks it).
#[tokio::test]
async fn max_pods_makes_a_versioned_launch_template_the_nodegroup_follows() {
    let t = tutorial();
    let d = t.dir.path();
    let aws = sdk(&t.proxy.url).await;
    set_subnet_tag(
        d,
        "instance_types = [\"t3.medium\"]\n",
        "instance_types = [\"t3.medium\"]\nami_type = \"AL2023_x86_64_STANDARD\"\nmax_pods = 10\ntags = { team = \"platform\" }\n",
    );
    let plan = run_ok(t.eksnet().args(["plan", SPEC]), 0);
    assert!(
        plan.stdout.contains("+ launch_template.main")
            && plan
                .stdout
                .contains("nodegroup.main: max pods 10 per node (t3.medium 12)"),
        "{}",
        plan.stdout
    );
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);

    let (id, version, user_data) = launch_template(&aws).await.expect("launch template made");
    assert_eq!(version, 1);
    // The nodegroup's tags are on its template too, beside eksnet's own.
    let made = aws
        .ec2
        .describe_launch_templates()
        .launch_template_names(TEMPLATE)
        .send()
        .await
        .expect("describe launch templates");
    let tags: Vec<(&str, &str)> = made.launch_templates()[0]
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?, t.value()?)))
        .collect();
    assert!(tags.contains(&("team", "platform")), "{tags:?}");
    assert!(
        tags.contains(&("eksnet:address", "launch_template.main")),
        "{tags:?}"
    );
    assert!(
        user_data.contains("Content-Type: application/node.eks.aws")
            && user_data.contains("kind: NodeConfig")
            && user_data.contains("maxPods: 10"),
        "{user_data}"
    );
    let ng = described_nodegroup(&aws, "my-custom-networking-cluster", "my-nodegroup").await;
    let lt = ng
        .launch_template()
        .expect("nodegroup on a launch template");
    assert_eq!((lt.id(), lt.version()), (Some(id.as_str()), Some("1")));
    run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);

    // A new value: a new default version, and the nodegroup moved to it.
    set_subnet_tag(d, "max_pods = 10", "max_pods = 8");
    let plan = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 2);
    assert!(
        plan.stdout.contains("~ launch_template.main")
            && plan.stdout.contains("~ max_pods   = 10 -> 8")
            && plan
                .stdout
                .contains("~ launch_template_version = \"1\" -> (known after apply)"),
        "{}",
        plan.stdout
    );
    t.proxy.reset_stats();
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    let (id2, version, user_data) = launch_template(&aws).await.expect("launch template");
    assert_eq!((id2.as_str(), version), (id.as_str(), 2));
    assert!(user_data.contains("maxPods: 8"), "{user_data}");
    let ng = described_nodegroup(&aws, "my-custom-networking-cluster", "my-nodegroup").await;
    assert_eq!(ng.launch_template().and_then(|l| l.version()), Some("2"));
    let stats = t.proxy.stats();
    assert_eq!(
        (
            stats.count("CreateLaunchTemplateVersion"),
            stats.count("UpdateNodegroupVersion"),
            stats.count("CreateNodegroup"),
            stats.count("DeleteNodegroup"),
        ),
        (1, 1, 0, 0),
        "updated in place, not replaced"
    );
    run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);

    // More than t3.medium's ENIs give under custom networking: refused before any change.
    set_subnet_tag(d, "max_pods = 8", "max_pods = 13");
    t.proxy.reset_stats();
    let refused = run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 1);
    assert!(
        refused
            .stderr
            .contains("`nodegroup.main.max_pods`: max_pods = 13 is more than t3.medium can run")
            && refused.stderr.contains(&format!("{SPEC}:")),
        "{}",
        refused.stderr
    );
    assert_eq!(t.proxy.stats().mutating(), 0);
    set_subnet_tag(d, "max_pods = 13", "max_pods = 8");

    // `--replace` of the template: a new one beside the old (`-cbd`), the nodegroup replaced
    // onto it (EKS cannot move a nodegroup to another template), then both old ones deleted.
    run_ok(
        t.eksnet().args([
            "apply",
            SPEC,
            "--auto-approve",
            "--replace",
            "launch_template.main",
        ]),
        0,
    );
    assert_eq!(eksnet_templates(&aws).await, [format!("{TEMPLATE}-cbd")]);
    let ng = described_nodegroup(&aws, "my-custom-networking-cluster", "my-nodegroup-cbd").await;
    let lt = ng.launch_template().expect("on a template");
    assert_eq!(lt.name(), Some(format!("{TEMPLATE}-cbd").as_str()));
    assert_eq!(
        nodegroups(&aws).await,
        vec![("my-nodegroup-cbd".to_string(), "ACTIVE".to_string())]
    );
    run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);
    // Both rows forgotten: both `-cbd` objects are found again by their `eksnet:name` tags.
    run_ok(
        t.eksnet()
            .args(["state", "rm", "nodegroup.main", "launch_template.main"]),
        0,
    );
    t.apply_changes_nothing_in_aws();
    assert_eq!(eksnet_templates(&aws).await, [format!("{TEMPLATE}-cbd")]);
    run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);

    run_ok(t.eksnet().args(["destroy", SPEC, "--auto-approve"]), 0);
    assert!(
        eksnet_templates(&aws).await.is_empty(),
        "template left behind"
    );

    // Made again, then `max_pods` dropped: EKS cannot take a nodegroup off its launch
    // template, so the nodegroup is replaced (create-before-destroy) without one, and the
    // template is deleted after the old nodegroup.
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    assert!(launch_template(&aws).await.is_some());
    set_subnet_tag(
        d,
        "ami_type = \"AL2023_x86_64_STANDARD\"\nmax_pods = 8\n",
        "ami_type = \"AL2023_x86_64_STANDARD\"\n",
    );
    let plan = run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 2);
    assert!(
        plan.stdout.contains("- launch_template.main")
            && plan.stdout.contains("+/- nodegroup.main")
            && plan.stdout.contains("- launch_template_id"),
        "{}",
        plan.stdout
    );
    t.proxy.reset_stats();
    run_ok(t.eksnet().args(["apply", SPEC, "--auto-approve"]), 0);
    assert!(
        launch_template(&aws).await.is_none(),
        "template left behind"
    );
    assert_eq!(
        nodegroups(&aws).await,
        vec![("my-nodegroup-cbd".to_string(), "ACTIVE".to_string())]
    );
    let ng = described_nodegroup(&aws, "my-custom-networking-cluster", "my-nodegroup-cbd").await;
    assert!(ng.launch_template().is_none(), "{:?}", ng.launch_template());
    // The old nodegroup went before its template.
    let order: Vec<String> = t
        .proxy
        .stats()
        .requests()
        .into_iter()
        .map(|r| r.op)
        .filter(|op| op == "DeleteNodegroup" || op == "DeleteLaunchTemplate")
        .collect();
    assert_eq!(order, ["DeleteNodegroup", "DeleteLaunchTemplate"]);
    run_ok(t.eksnet().args(["plan", SPEC, "--detailed-exitcode"]), 0);
}

// ---- the pod subnets' route tables

/// One route table as DescribeRouteTables shows it: its subnets, and its routes but the
/// `local` ones as (destination, target).
#[derive(Debug, PartialEq)]
struct LiveTable {
    subnets: std::collections::BTreeSet<String>,
    routes: std::collections::BTreeSet<(String, String)>,
}

async fn live_table(aws: &eksnet::cloud::aws::AwsClients, id: &str) -> Option<LiveTable> {
    let out = aws
        .ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("route-table-id")
                .values(id)
                .build(),
        )
        .send()
        .await
        .expect("DescribeRouteTables");
    let t = out.route_tables().first()?;
    Some(LiveTable {
        subnets: t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id().map(String::from))
            .collect(),
        routes: t
            .routes()
            .iter()
            .filter(|r| r.gateway_id() != Some("local"))
            .filter_map(|r| {
                let target = r
                    .nat_gateway_id()
                    .or(r.transit_gateway_id())
                    .or(r.vpc_peering_connection_id())
                    .or(r.gateway_id())?;
                Some((r.destination_cidr_block()?.to_string(), target.to_string()))
            })
            .collect(),
    })
}

/// The id of the table eksnet tagged with `addr`.
async fn tagged_table(aws: &eksnet::cloud::aws::AwsClients, addr: &str) -> Option<String> {
    aws.ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:eksnet:address")
                .values(addr)
                .build(),
        )
        .send()
        .await
        .expect("DescribeRouteTables")
        .route_tables()
        .first()
        .and_then(|t| t.route_table_id())
        .map(String::from)
}

/// What a user's VPC has around the pod subnets: a public subnet with a NAT gateway, a node
/// subnet on a table of its own routing 0.0.0.0/0 to it, a transit gateway and a peering
/// connection to another VPC.
struct AroundPods {
    vpc: String,
    nat: String,
    tgw: String,
    pcx: String,
    node_subnet: String,
    node_table: String,
}

/// The id a create request answers with: `$what()` of its answer, then its `$id()`.
macro_rules! created {
    ($req:expr, $what:ident, $id:ident) => {
        $req.send()
            .await
            .expect(stringify!($what))
            .$what()
            .and_then(|x| x.$id())
            .expect(stringify!($id))
            .to_string()
    };
}

async fn around_pods(aws: &eksnet::cloud::aws::AwsClients) -> AroundPods {
    let ec2 = &aws.ec2;
    let vpc = vpc_outside_eksnet(aws, "10.0.0.0/16").await;
    let subnet = |cidr: &'static str| {
        let req = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr)
            .availability_zone("us-west-2a");
        async move { created!(req, subnet, subnet_id) }
    };
    let public = subnet("10.0.0.0/24").await;
    let node_subnet = subnet("10.0.1.0/24").await;
    let igw = created!(
        ec2.create_internet_gateway(),
        internet_gateway,
        internet_gateway_id
    );
    ec2.attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc)
        .send()
        .await
        .expect("attach igw");
    let eip = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .expect("eip")
        .allocation_id()
        .expect("allocation id")
        .to_string();
    let nat = created!(
        ec2.create_nat_gateway()
            .subnet_id(&public)
            .allocation_id(eip),
        nat_gateway,
        nat_gateway_id
    );
    let node_table = created!(
        ec2.create_route_table().vpc_id(&vpc),
        route_table,
        route_table_id
    );
    ec2.create_route()
        .route_table_id(&node_table)
        .destination_cidr_block("0.0.0.0/0")
        .nat_gateway_id(&nat)
        .send()
        .await
        .expect("route");
    ec2.associate_route_table()
        .route_table_id(&node_table)
        .subnet_id(&node_subnet)
        .send()
        .await
        .expect("associate");
    let tgw = created!(
        ec2.create_transit_gateway(),
        transit_gateway,
        transit_gateway_id
    );
    let peer = vpc_outside_eksnet(aws, "10.30.0.0/16").await;
    let pcx = created!(
        ec2.create_vpc_peering_connection()
            .vpc_id(&vpc)
            .peer_vpc_id(peer),
        vpc_peering_connection,
        vpc_peering_connection_id
    );
    AroundPods {
        vpc,
        nat,
        tgw,
        pcx,
        node_subnet,
        node_table,
    }
}

/// The adopted VPC with two pod subnets and their own route table: 0.0.0.0/0 to the NAT
/// gateway and 10.30.0.0/16 to `target` (`FIELD = "ID"`), with `pods_subnets` associated;
/// then `more`.
fn pods_spec(a: &AroundPods, target: &str, pods_subnets: &str, more: &str) -> String {
    format!(
        r#"[vpc.main]
id = "{vpc}"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${{vpc.main.id}}"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "${{vpc.main.id}}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"

[subnet.pod_b]
vpc_id = "${{vpc.main.id}}"
cidr_block = "100.64.32.0/19"
availability_zone = "us-west-2b"

[route_table.pods]
vpc_id = "${{vpc.main.id}}"
routes = [
  {{ destination = "0.0.0.0/0", nat_gateway_id = "{nat}" }},
  {{ destination = "10.30.0.0/16", {target} }},
]
subnet_ids = [{pods_subnets}]
tags = {{ Name = "pods" }}
{more}"#,
        vpc = a.vpc,
        nat = a.nat,
    )
}

/// A route table for the pod subnets through its whole life on moto, checked through the
/// SDK: created with its routes and both associations, found again by its tags when the
/// state lost it, a route retargeted in place, a subnet moved to an existing table (made
/// outside eksnet) in one apply, a subnet another table holds refused, and destroy leaving
/// neither the table nor an association eksnet made, the existing table as it was.
#[tokio::test]
async fn pod_subnets_route_table_lives_and_goes() {
    let (_guard, url) = moto();
    let aws = sdk(&url).await;
    let a = around_pods(&aws).await;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let both = r#""${subnet.pod_a.id}", "${subnet.pod_b.id}""#;
    let write = |text: String| std::fs::write(d.join("pods.toml"), text).expect("write spec");
    let eksnet = || eksnet(&url, d);

    write(pods_spec(
        &a,
        &format!("vpc_peering_connection_id = \"{}\"", a.pcx),
        both,
        "",
    ));
    let plan = run_ok(eksnet().args(["plan", "pods.toml"]), 0);
    assert!(plan.stdout.contains("Plan: 4 to add"), "{}", plan.stdout);
    run_ok(eksnet().args(["apply", "pods.toml", "--auto-approve"]), 0);
    let pod_a = by_cidr_live(&aws, &a.vpc, "100.64.0.0/19").await;
    let pod_b = by_cidr_live(&aws, &a.vpc, "100.64.32.0/19").await;
    let (pod_a, pod_b) = (
        pod_a.subnet_id().expect("id").to_string(),
        pod_b.subnet_id().expect("id").to_string(),
    );
    let table = tagged_table(&aws, "route_table.pods")
        .await
        .expect("the table, tagged with its address");
    let pair = |x: &str, y: &str| (x.to_string(), y.to_string());
    assert_eq!(
        live_table(&aws, &table).await,
        Some(LiveTable {
            subnets: [pod_a.clone(), pod_b.clone()].into(),
            routes: [pair("0.0.0.0/0", &a.nat), pair("10.30.0.0/16", &a.pcx)].into(),
        }),
        "both pod subnets associated, both routes there"
    );
    run_ok(
        eksnet().args(["plan", "pods.toml", "--detailed-exitcode"]),
        0,
    );

    // The state loses the table (a crash before its row was written): found again by its
    // tags, recorded, not made twice.
    run_ok(
        eksnet().args([
            "state",
            "rm",
            "route_table.pods",
            "--state",
            "state/pods.db",
        ]),
        0,
    );
    let found = run_ok(eksnet().args(["plan", "pods.toml"]), 0);
    assert!(
        found
            .stdout
            .contains("# route_table.pods will be recorded in the state")
            && found.stdout.contains(&format!("[id={table}]")),
        "{}",
        found.stdout
    );
    run_ok(eksnet().args(["apply", "pods.toml", "--auto-approve"]), 0);
    run_ok(
        eksnet().args(["plan", "pods.toml", "--detailed-exitcode"]),
        0,
    );

    // 10.30.0.0/16 now through the transit gateway: one update in place (ReplaceRoute).
    write(pods_spec(
        &a,
        &format!("transit_gateway_id = \"{}\"", a.tgw),
        both,
        "",
    ));
    let changed = run_ok(
        eksnet().args(["plan", "pods.toml", "--detailed-exitcode"]),
        2,
    );
    for part in [
        "# route_table.pods will be updated in place",
        "Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.",
    ] {
        assert!(changed.stdout.contains(part), "{part}: {}", changed.stdout);
    }
    run_ok(eksnet().args(["apply", "pods.toml", "--auto-approve"]), 0);
    run_ok(
        eksnet().args(["plan", "pods.toml", "--detailed-exitcode"]),
        0,
    );
    assert_eq!(
        live_table(&aws, &table).await.map(|t| t.routes),
        Some([pair("0.0.0.0/0", &a.nat), pair("10.30.0.0/16", &a.tgw)].into())
    );

    // pod_b moves to the node subnet's table, made outside eksnet, in one apply: the pods'
    // table lets go of it first (AWS has one table per subnet).
    let nodes = format!(
        "\n[route_table.nodes]\nexisting = true\nid = \"{}\"\nsubnet_ids = [\"${{subnet.pod_b.id}}\"]\n",
        a.node_table
    );
    let tgw = format!("transit_gateway_id = \"{}\"", a.tgw);
    write(pods_spec(&a, &tgw, r#""${subnet.pod_a.id}""#, &nodes));
    run_ok(eksnet().args(["apply", "pods.toml", "--auto-approve"]), 0);
    run_ok(
        eksnet().args(["plan", "pods.toml", "--detailed-exitcode"]),
        0,
    );
    assert_eq!(
        live_table(&aws, &table).await.map(|t| t.subnets),
        Some([pod_a.clone()].into())
    );
    assert_eq!(
        live_table(&aws, &a.node_table).await.map(|t| t.subnets),
        Some([a.node_subnet.clone(), pod_b.clone()].into())
    );

    // A subnet another table holds (the node subnet, on its own table) is refused, with the
    // table named, and nothing is taken from it.
    write(pods_spec(
        &a,
        &tgw,
        &format!(r#""${{subnet.pod_a.id}}", "{}""#, a.node_subnet),
        &nodes,
    ));
    let refused = run_ok(eksnet().args(["apply", "pods.toml", "--auto-approve"]), 1);
    assert!(
        refused.stderr.contains(&format!(
            "subnet {} is associated with route table {}",
            a.node_subnet, a.node_table
        )),
        "{}",
        refused.stderr
    );
    assert_eq!(
        live_table(&aws, &a.node_table).await.map(|t| t.subnets),
        Some([a.node_subnet.clone(), pod_b.clone()].into())
    );
    write(pods_spec(&a, &tgw, r#""${subnet.pod_a.id}""#, &nodes));

    // Destroy: the pods' table and its association go; the node table loses only pod_b.
    let plan = run_ok(eksnet().args(["plan", "pods.toml", "--destroy"]), 0);
    assert!(
        plan.stdout
            .contains("# route_table.nodes will be put back as it was before eksnet"),
        "{}",
        plan.stdout
    );
    run_ok(eksnet().args(["destroy", "pods.toml", "--auto-approve"]), 0);
    assert_eq!(
        live_table(&aws, &table).await,
        None,
        "the pods' table is gone"
    );
    assert_eq!(
        live_table(&aws, &a.node_table).await,
        Some(LiveTable {
            subnets: [a.node_subnet.clone()].into(),
            routes: [pair("0.0.0.0/0", &a.nat)].into(),
        }),
        "the existing table as it was made"
    );
    let left = aws
        .ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("association.subnet-id")
                .values(&pod_a)
                .values(&pod_b)
                .build(),
        )
        .send()
        .await
        .expect("DescribeRouteTables");
    assert!(left.route_tables().is_empty(), "{left:?}");
}
