//! `eksnet init` end to end in the sandbox: a cluster made OUTSIDE eksnet with the AWS SDK
//! (`common::existing_cluster`), then the real binary reads it and writes a spec, which
//! validates, plans only additions (the VPC and the cluster only read), applies, and destroys
//! back to the cluster as it was made; the same on the add-on path, through `roll` and
//! `verify`. Also `capacity` counting the node sources the spec does not declare, the refusal
//! of an IPv6 cluster, and a pod block that steps around what the VPC already has and routes.

mod common;

use common::existing_cluster::{self, ExistingCluster, ExistingClusterOptions};
use common::sandbox::{Sandbox, SandboxOptions};
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn eksnet_in(sandbox: &Sandbox, dir: &Path) -> Command {
    let mut c = sandbox.cmd(dir);
    c.env("EKSNET_POLL_MAX_MS", "200");
    c
}

fn kube_get(sandbox: &Sandbox, path: &str) -> Value {
    let (status, body) = http(
        sandbox.kube_url.trim_start_matches("http://"),
        "GET",
        path,
        "",
    );
    assert!(
        status == 200 || status == 404,
        "GET {path}: {status} {body}"
    );
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// A spec with its comments' line breaks taken out and spaces collapsed.
fn flat(text: &str) -> String {
    text.replace("\n#", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// ENIConfig name → its subnet, as the cluster has them.
fn eni_configs(sandbox: &Sandbox) -> BTreeMap<String, String> {
    kube_get(sandbox, "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
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
}

/// The `aws-node` container's env entries with a value.
fn aws_node_env(sandbox: &Sandbox) -> BTreeMap<String, String> {
    let ds = kube_get(
        sandbox,
        "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node",
    );
    ds["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

async fn vpc_blocks(aws: &eksnet::cloud::aws::AwsClients, vpc: &str) -> BTreeSet<String> {
    aws.ec2
        .describe_vpcs()
        .vpc_ids(vpc)
        .send()
        .await
        .expect("DescribeVpcs")
        .vpcs()
        .first()
        .expect("the VPC")
        .cidr_block_association_set()
        .iter()
        .filter(|a| {
            a.cidr_block_state().and_then(|s| s.state())
                == Some(&aws_sdk_ec2::types::VpcCidrBlockStateCode::Associated)
        })
        .filter_map(|a| a.cidr_block().map(String::from))
        .collect()
}

/// What the world builder made is all still there.
async fn made_outside_is_intact(aws: &eksnet::cloud::aws::AwsClients, made: &ExistingCluster) {
    let c = aws
        .eks
        .describe_cluster()
        .name(&made.cluster)
        .send()
        .await
        .expect("the cluster is still there")
        .cluster
        .expect("a cluster");
    assert_eq!(c.status().map(|s| s.as_str()), Some("ACTIVE"));
    let ng = described_nodegroup(aws, &made.cluster, made.nodegroup.as_deref().unwrap()).await;
    assert_eq!(ng.status().map(|s| s.as_str()), Some("ACTIVE"));
    let subnets = aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(made.private_subnets.clone()))
        .send()
        .await
        .expect("the private subnets are still there");
    assert_eq!(subnets.subnets().len(), 2);
    assert!(vpc_blocks(aws, &made.vpc_id).await.contains(&made.vpc_cidr));
    // The node subnets' route tables as they were: each with its own subnet only.
    for (table, subnet) in made.private_route_tables.iter().zip(&made.private_subnets) {
        assert_eq!(
            table_subnets(aws, table).await,
            BTreeSet::from([subnet.clone()]),
            "{table}"
        );
    }
}

#[tokio::test]
async fn init_writes_a_spec_that_plans_only_additions_applies_and_destroys_back() {
    let sandbox = Sandbox::up(SandboxOptions::default());
    let made = existing_cluster::build(&sandbox, &ExistingClusterOptions::default()).await;
    assert_eq!(made.nodes.len(), 2, "the nodegroup's two nodes joined");
    let aws = sdk(&sandbox.endpoint).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let eksnet = || eksnet_in(&sandbox, dir.path());

    // init: the spec in a file, what it found on stderr.
    let init = run_ok(
        eksnet().args(["init", "--cluster", &made.cluster, "--out", "spec.toml"]),
        0,
    );
    assert!(
        init.stdout.is_empty(),
        "the spec goes to the file: {}",
        init.stdout
    );
    let spec = std::fs::read_to_string(dir.path().join("spec.toml")).expect("spec.toml");
    for expected in [
        &format!("[vpc.main]\nid = \"{}\"\ncidr_block = \"192.168.0.0/24\"", made.vpc_id),
        &format!("[cluster.main]\nname = \"{}\"\nexisting = true", made.cluster),
        "[cidr_block.pods]\nvpc_id = \"${vpc.main.id}\"\ncidr_block = \"100.64.0.0/16\"",
        "[subnet.pods-us-west-2a]\nvpc_id = \"${vpc.main.id}\"\ncidr_block = \"100.64.0.0/19\"\navailability_zone = \"us-west-2a\"",
        "[subnet.pods-us-west-2b]\nvpc_id = \"${vpc.main.id}\"\ncidr_block = \"100.64.32.0/19\"\navailability_zone = \"us-west-2b\"",
        "[aws_node.main]\ncluster_name = \"${cluster.main.name}\"\ncustom_network = true\neni_config_label = \"topology.kubernetes.io/zone\"",
        "[eni_config.us-west-2a]\ncluster_name = \"${cluster.main.name}\"\nname = \"us-west-2a\"\nsubnet_id = \"${subnet.pods-us-west-2a.id}\"",
        // The numbers behind the size: 2 nodes of max 3 per AZ… each t3.medium 12 max pods.
        "12 max pods under custom networking",
        "managed nodegroup `workers`",
    ] {
        assert!(spec.contains(expected), "missing {expected:?} in\n{spec}");
    }
    assert!(
        !spec.contains("[nodegroup."),
        "nodegroups are never declared:\n{spec}"
    );
    // Routing: each private subnet has its own NAT table, which a new subnet would miss (it
    // gets the main one): each pod subnet joins its AZ's node table, an existing table of
    // which eksnet manages only that association.
    for ((subnet, table), az) in made
        .private_subnets
        .iter()
        .zip(&made.private_route_tables)
        .zip(["us-west-2a", "us-west-2b"])
    {
        assert!(
            init.stderr
                .contains(&format!("node subnet {subnet} uses route table {table}")),
            "{}",
            init.stderr
        );
        let block = format!(
            "[route_table.nodes-{az}]\nexisting = true\nid = \"{table}\"\nsubnet_ids = [\"${{subnet.pods-{az}.id}}\"]\n"
        );
        assert!(spec.contains(&block), "missing {block:?} in\n{spec}");
    }
    assert!(
        !init.stderr.contains("will use the VPC's main route table"),
        "no pod subnet is left on the main table: {}",
        init.stderr
    );
    assert!(
        spec.contains("0.0.0.0/0 → nat-"),
        "the NAT routes the main table lacks:\n{spec}"
    );

    // Refuses to overwrite; --force does; stdout gets the same spec, the same every time.
    let again = run_ok(
        eksnet().args(["init", "--cluster", &made.cluster, "--out", "spec.toml"]),
        1,
    );
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    run_ok(
        eksnet().args([
            "init",
            "--cluster",
            &made.cluster,
            "--out",
            "spec.toml",
            "--force",
        ]),
        0,
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("spec.toml")).unwrap(),
        spec
    );
    let out1 = run_ok(eksnet().args(["init", "--cluster", &made.cluster]), 0).stdout;
    let out2 = run_ok(eksnet().args(["init", "--cluster", &made.cluster]), 0).stdout;
    assert_eq!(out1, out2, "deterministic");
    // The same spec, but for the file name in its comments (which may wrap otherwise).
    assert_eq!(flat(&out1), flat(&spec.replace("spec.toml", "SPEC")));
    // --json: the spec and its summary.
    let json = run_ok(
        eksnet().args(["init", "--cluster", &made.cluster, "--json"]),
        0,
    );
    let report: Value = serde_json::from_str(&json.stdout).expect("init --json is JSON");
    assert_eq!(report["spec"].as_str(), Some(out1.as_str()));
    assert_eq!(report["summary"]["block"]["cidr"], "100.64.0.0/16");
    assert_eq!(report["summary"]["cni"]["path"], "aws_node");
    assert!(json
        .stderr
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["event"].is_string())));

    run_ok(eksnet().args(["validate", "spec.toml"]), 0);

    // The plan: only additions; the VPC and the cluster only read (recorded, `<=`).
    let plan = run_ok(eksnet().args(["plan", "spec.toml", "--json"]), 0);
    let plan: Value = serde_json::from_str(&plan.stdout).expect("plan --json");
    let actions: BTreeMap<String, String> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["addr"].as_str().unwrap_or_default().to_string(),
                c["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        ("vpc.main", "adopt"),
        ("cluster.main", "adopt"),
        ("cidr_block.pods", "create"),
        ("subnet.pods-us-west-2a", "create"),
        ("subnet.pods-us-west-2b", "create"),
        ("eni_config.us-west-2a", "create"),
        ("eni_config.us-west-2b", "create"),
        // The node subnets' tables: an association added to each, nothing else.
        ("route_table.nodes-us-west-2a", "update"),
        ("route_table.nodes-us-west-2b", "update"),
        // The CNI's settings: two entries added to aws-node's env, nothing removed.
        ("aws_node.main", "update"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(actions, expected);
    let aws_node = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["addr"] == "aws_node.main")
        .unwrap();
    let before = aws_node["before"]["env"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let after = aws_node["after"]["env"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        before.is_empty() || before.values().all(Value::is_null),
        "{aws_node}"
    );
    assert_eq!(
        after.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG".to_string(),
            "ENI_CONFIG_LABEL_DEF".to_string()
        ])
    );
    // The tables' updates only add the pod subnets (known after apply); the node subnets'
    // own associations are not eksnet's and do not show.
    for c in plan["changes"].as_array().unwrap().iter().filter(|c| {
        c["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("route_table."))
    }) {
        assert_eq!(c["before"]["subnet_ids"], serde_json::json!([]), "{c}");
        assert_eq!(
            c["after"]["subnet_ids"].as_array().map(Vec::len),
            Some(1),
            "{c}"
        );
        assert!(c["after"].get("routes").is_none(), "{c}");
    }
    // Which table each pod subnet will use, in the plan's JSON.
    let routes = plan["pod_subnet_routes"]
        .as_array()
        .expect("pod_subnet_routes");
    assert_eq!(routes.len(), 2, "{plan}");
    for (r, table) in routes.iter().zip(&made.private_route_tables) {
        assert_eq!(r["table"]["source"], "spec", "{r}");
        assert_eq!(r["table"]["id"].as_str(), Some(table.as_str()), "{r}");
        assert_eq!(r["routes_out"][0]["destination"], "0.0.0.0/0", "{r}");
        assert_eq!(r["routes_out"][0]["kind"], "nat_gateway", "{r}");
        assert_eq!(r["snat"], "node_primary_interface", "{r}");
    }

    // capacity counts the nodes the spec does not declare: the nodegroup `workers` at its max
    // size, 3 over 2 AZs, so up to 2 nodes per AZ of 12 addresses each (t3.medium under
    // custom networking: 10 pod addresses on 2 ENIs, plus the ENIs' own).
    let cap = run_ok(
        eksnet().args(["capacity", "spec.toml", "--detailed-exitcode", "--json"]),
        0,
    );
    let cap: Value = serde_json::from_str(&cap.stdout).expect("capacity --json");
    let cluster = &cap["clusters"][0];
    assert_eq!(cluster["nodegroups"], serde_json::json!([]), "{cap}");
    assert_eq!(
        cluster["outside"][0]["label"],
        "managed nodegroup `workers`"
    );
    assert_eq!(cluster["outside"][0]["max_size"], 3);
    assert_eq!(cluster["outside"][0]["nodes"], 2);
    let zones = cluster["capacity"]["zones"].as_array().expect("zones");
    assert_eq!(zones.len(), 2, "{cap}");
    for z in zones {
        assert_eq!(
            (z["nodes"].as_u64(), z["demand"].as_u64()),
            (Some(2), Some(24)),
            "{z}"
        );
        assert_eq!(z["free"].as_u64(), Some(8187), "a /19 not made yet: {z}");
    }
    // The same spec with /28 pod subnets (11 free addresses each): short by 13 in each AZ,
    // exit 2 with the group named.
    let small = spec
        .replace("100.64.0.0/19", "100.64.0.0/28")
        .replace("100.64.32.0/19", "100.64.0.16/28");
    std::fs::write(dir.path().join("small.toml"), small).expect("small.toml");
    let short = run_ok(
        eksnet().args([
            "capacity",
            "small.toml",
            "--state",
            "small.db",
            "--detailed-exitcode",
        ]),
        2,
    );
    for part in [
        "managed nodegroup `workers` (not in the spec)",
        "short by 13",
    ] {
        assert!(
            short.stdout.contains(part),
            "missing {part:?} in {}",
            short.stdout
        );
    }
    assert!(
        short.stderr.contains("managed nodegroup `workers` up to 2"),
        "{}",
        short.stderr
    );

    // Apply: the block, the pod subnets in their AZs, the ENIConfigs on them, custom
    // networking on.
    run_ok(eksnet().args(["apply", "spec.toml", "--auto-approve"]), 0);
    let pods = subnets_by_cidr(&aws, &["100.64.0.0/19", "100.64.32.0/19"]).await;
    let by_az: BTreeMap<String, String> = pods
        .iter()
        .map(|s| {
            (
                s.availability_zone().unwrap_or_default().to_string(),
                s.subnet_id().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        by_az.keys().cloned().collect::<Vec<_>>(),
        vec!["us-west-2a", "us-west-2b"]
    );
    assert_eq!(
        eni_configs(&sandbox),
        by_az,
        "one ENIConfig per AZ on its pod subnet"
    );
    assert_eq!(
        aws_node_env(&sandbox)
            .get("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG")
            .map(String::as_str),
        Some("true")
    );
    assert!(vpc_blocks(&aws, &made.vpc_id)
        .await
        .contains("100.64.0.0/16"));
    // Each pod subnet in its AZ's node table, beside the node subnet.
    for ((az, table), node_subnet) in ["us-west-2a", "us-west-2b"]
        .iter()
        .zip(&made.private_route_tables)
        .zip(&made.private_subnets)
    {
        let expected: BTreeSet<String> = [by_az[*az].clone(), node_subnet.clone()].into();
        assert_eq!(table_subnets(&aws, table).await, expected, "{table}");
    }
    // A second plan has nothing to do.
    run_ok(
        eksnet().args(["plan", "spec.toml", "--detailed-exitcode"]),
        0,
    );

    // Destroy: what eksnet made goes, what was made outside stays.
    run_ok(eksnet().args(["destroy", "spec.toml", "--auto-approve"]), 0);
    assert!(subnets_by_cidr(&aws, &["100.64.0.0/19", "100.64.32.0/19"])
        .await
        .is_empty());
    assert!(eni_configs(&sandbox).is_empty());
    assert!(!vpc_blocks(&aws, &made.vpc_id)
        .await
        .contains("100.64.0.0/16"));
    assert_ne!(
        aws_node_env(&sandbox)
            .get("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG")
            .map(String::as_str),
        Some("true"),
        "aws-node put back as it was"
    );
    made_outside_is_intact(&aws, &made).await;
}

/// The subnets associated with a route table.
async fn table_subnets(aws: &eksnet::cloud::aws::AwsClients, table: &str) -> BTreeSet<String> {
    aws.ec2
        .describe_route_tables()
        .route_table_ids(table)
        .send()
        .await
        .expect("DescribeRouteTables")
        .route_tables()
        .iter()
        .flat_map(|t| t.associations())
        .filter_map(|a| a.subnet_id().map(String::from))
        .collect()
}

#[tokio::test]
async fn init_refuses_an_ipv6_cluster_and_writes_nothing() {
    let sandbox = Sandbox::up(SandboxOptions {
        data_plane: false,
        ..Default::default()
    });
    let made = existing_cluster::build(
        &sandbox,
        &ExistingClusterOptions {
            name: "six".into(),
            ip_family: Some("ipv6".into()),
            nodegroup: None,
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run_ok(
        eksnet_in(&sandbox, dir.path()).args([
            "init",
            "--cluster",
            &made.cluster,
            "--out",
            "spec.toml",
        ]),
        1,
    );
    assert!(
        r.stderr.contains("cannot turn custom networking on"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("IPv6 cluster"), "{}", r.stderr);
    assert!(!dir.path().join("spec.toml").exists());
    // A cluster that does not exist is named, with the region.
    let r = run_ok(
        eksnet_in(&sandbox, dir.path()).args(["init", "--cluster", "nope"]),
        1,
    );
    assert!(
        r.stderr
            .contains("cluster `nope` was not found in us-west-2"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn init_steps_around_a_block_of_the_vpc_and_routed_ranges() {
    let sandbox = Sandbox::up(SandboxOptions {
        data_plane: false,
        ..Default::default()
    });
    let made = existing_cluster::build(
        &sandbox,
        &ExistingClusterOptions {
            name: "crowded".into(),
            ..Default::default()
        },
    )
    .await;
    let aws = sdk(&sandbox.endpoint).await;
    // 100.64.0.0/16 is already the VPC's; 100.65.0.0/16 is routed to a transit gateway and
    // 100.66.128.0/17 to a peered VPC, from the node subnets' tables.
    aws.ec2
        .associate_vpc_cidr_block()
        .vpc_id(&made.vpc_id)
        .cidr_block("100.64.0.0/16")
        .send()
        .await
        .expect("AssociateVpcCidrBlock");
    let tgw = aws
        .ec2
        .create_transit_gateway()
        .send()
        .await
        .expect("CreateTransitGateway")
        .transit_gateway
        .and_then(|t| t.transit_gateway_id)
        .expect("a transit gateway id");
    aws.ec2
        .create_route()
        .route_table_id(&made.private_route_tables[0])
        .destination_cidr_block("100.65.0.0/16")
        .transit_gateway_id(&tgw)
        .send()
        .await
        .expect("CreateRoute to the transit gateway");
    let peer = aws
        .ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .expect("CreateVpc")
        .vpc
        .and_then(|v| v.vpc_id)
        .expect("a VPC id");
    let pcx = aws
        .ec2
        .create_vpc_peering_connection()
        .vpc_id(&made.vpc_id)
        .peer_vpc_id(&peer)
        .send()
        .await
        .expect("CreateVpcPeeringConnection")
        .vpc_peering_connection
        .and_then(|p| p.vpc_peering_connection_id)
        .expect("a peering id");
    aws.ec2
        .create_route()
        .route_table_id(&made.private_route_tables[1])
        .destination_cidr_block("100.66.128.0/17")
        .vpc_peering_connection_id(&pcx)
        .send()
        .await
        .expect("CreateRoute to the peering");

    let dir = tempfile::tempdir().expect("tempdir");
    let eksnet = || eksnet_in(&sandbox, dir.path());
    run_ok(
        eksnet().args(["init", "--cluster", &made.cluster, "--out", "spec.toml"]),
        0,
    );
    let spec = std::fs::read_to_string(dir.path().join("spec.toml")).expect("spec.toml");
    assert!(
        spec.contains(
            "[cidr_block.pods]\nvpc_id = \"${vpc.main.id}\"\ncidr_block = \"100.67.0.0/16\""
        ),
        "{spec}"
    );
    for avoided in [
        format!("100.64.0.0/16: a block of {}", made.vpc_id),
        format!("100.65.0.0/16: routed to {tgw} (transit gateway)"),
        format!("100.66.128.0/17: routed to {pcx} (VPC peering)"),
    ] {
        // Comments wrap: compare with line breaks and comment marks taken out.
        assert!(
            flat(&spec).contains(&avoided),
            "{avoided:?} not said in\n{spec}"
        );
    }
    run_ok(eksnet().args(["validate", "spec.toml"]), 0);
    // The plan's own checks against the VPC's blocks agree.
    let plan = run_ok(eksnet().args(["plan", "spec.toml"]), 0);
    assert!(plan.stdout.contains("+ cidr_block.pods"), "{}", plan.stdout);
}

/// A cluster whose VPC CNI is the `vpc-cni` add-on, made outside eksnet with its own
/// configuration values: `init` writes the add-on path (the add-on only read, its values kept,
/// custom networking on), the plan only changes the add-on's values, `apply` gives the nodes'
/// aws-node the setting through the add-on, `roll` moves the nodegroup's nodes onto the pod
/// subnets, `verify` passes, and `destroy` puts the add-on's values back exactly.
#[tokio::test(flavor = "multi_thread")]
async fn init_on_an_addon_cluster_rolls_its_nodes_and_puts_the_addon_back() {
    let sandbox = Sandbox::up(SandboxOptions::default());
    let made = existing_cluster::build(&sandbox, &ExistingClusterOptions::default()).await;
    let aws = sdk(&sandbox.endpoint).await;
    let made_values = serde_json::json!({"env": {"WARM_IP_TARGET": "5"}});
    aws.eks
        .create_addon()
        .cluster_name(&made.cluster)
        .addon_name("vpc-cni")
        .configuration_values(made_values.to_string())
        .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
        .send()
        .await
        .expect("CreateAddon");
    let values = || async {
        let a = aws
            .eks
            .describe_addon()
            .cluster_name(&made.cluster)
            .addon_name("vpc-cni")
            .send()
            .await
            .expect("DescribeAddon")
            .addon
            .expect("the add-on");
        (
            a.status().cloned(),
            a.configuration_values()
                .and_then(|v| serde_json::from_str::<Value>(v).ok())
                .unwrap_or(Value::Null),
        )
    };
    for _ in 0..100 {
        if values().await.0 == Some(aws_sdk_eks::types::AddonStatus::Active) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let eksnet = || eksnet_in(&sandbox, dir.path());

    run_ok(
        eksnet().args(["init", "--cluster", &made.cluster, "--out", "spec.toml"]),
        0,
    );
    let spec = std::fs::read_to_string(dir.path().join("spec.toml")).expect("spec.toml");
    for expected in [
        "[addon.",
        "name = \"vpc-cni\"",
        "existing = true",
        "custom_network = true",
        "WARM_IP_TARGET = \"5\"",
    ] {
        assert!(spec.contains(expected), "missing {expected:?} in\n{spec}");
    }
    assert!(
        !spec.contains("[aws_node."),
        "the add-on path, not aws-node:\n{spec}"
    );
    run_ok(eksnet().args(["validate", "spec.toml"]), 0);
    let plan = run_ok(eksnet().args(["plan", "spec.toml", "--json"]), 0);
    let plan: Value = serde_json::from_str(&plan.stdout).expect("plan --json");
    // The add-on's values are the one update besides the route tables' associations.
    existing_cluster::assert_plan_only_adds(&plan, &|addr| addr.starts_with("addon."));

    run_ok(eksnet().args(["apply", "spec.toml", "--auto-approve"]), 0);
    assert_eq!(
        aws_node_env(&sandbox)
            .get("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG")
            .map(String::as_str),
        Some("true"),
        "the add-on's setting reached aws-node"
    );
    assert_eq!(
        aws_node_env(&sandbox)
            .get("WARM_IP_TARGET")
            .map(String::as_str),
        Some("5"),
        "the add-on's own value kept"
    );
    let roll = run_ok(eksnet().args(["roll", "spec.toml", "--auto-approve"]), 0);
    assert_eq!(
        roll.stdout.lines().filter(|l| l.contains(" → ")).count(),
        2,
        "{}",
        roll.stdout
    );
    run_ok(eksnet().args(["verify", "spec.toml", "--wait", "60s"]), 0);

    run_ok(eksnet().args(["destroy", "spec.toml", "--auto-approve"]), 0);
    let (status, after) = values().await;
    assert_eq!(after, made_values, "the add-on's values put back exactly");
    assert_eq!(status, Some(aws_sdk_eks::types::AddonStatus::Active));
    made_outside_is_intact(&aws, &made).await;
}
