//! The data plane (`data_plane`, off by default): a real moto_server and the fake Kubernetes
//! API server behind the real proxy. Managed nodegroups get instances in moto once ACTIVE,
//! instances join as Nodes with the labels, provider ID and max pods their AMI and EKS
//! give them, scaling, launch template updates and deletes are followed, and instances
//! tagged for a cluster join on their own.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{json, Value};

/// How long the data plane may take to act (passes run every 200 ms; moto is slow on a
/// loaded 2-core machine).
const SETTLE: Duration = Duration::from_secs(20);
const REGION: &str = "us-east-1";

struct World {
    moto: Moto,
    kube: FakeKube,
    proxy: Proxy,
}

/// Two Nodes of another region (us-west-2) that the data plane did not make and must
/// leave alone (the fake's default seed has none).
fn seed_foreign_nodes(kube: &FakeKube) {
    let node = |name: &str, zone: &str, id: &str| {
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "topology.kubernetes.io/region": "us-west-2",
                "topology.kubernetes.io/zone": zone}},
            "spec": {"providerID": format!("aws:///{zone}/{id}")},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "capacity": {"pods": "17"}, "allocatable": {"pods": "17"}}})
    };
    let seed = json!({"objects": [
        node("ip-192-168-1-10.us-west-2.compute.internal", "us-west-2a", "i-0aaaaaaaaaaaaaaa1"),
        node("ip-192-168-2-10.us-west-2.compute.internal", "us-west-2b", "i-0aaaaaaaaaaaaaaa2"),
    ]});
    kube_send(kube, "POST", "/__fake/seed", "application/json", &seed);
}

/// moto, the fake API server (its default seed: the `aws-node` DaemonSet, the `coredns`
/// Deployment and PodDisruptionBudget; plus two Nodes of us-west-2, `seed_foreign_nodes`)
/// and the proxy with `args` and `--kube-url`.
fn world(args: &[&str]) -> World {
    let moto = Moto::start();
    moto.warm(&["eks", "ec2"]);
    let kube = FakeKube::start();
    seed_foreign_nodes(&kube);
    let url = kube.url();
    let mut all = vec!["--kube-url", url.as_str()];
    all.extend_from_slice(args);
    let proxy = Proxy::start(&moto.url(), &all);
    World { moto, kube, proxy }
}

fn ok(r: Resp) -> Resp {
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

fn ec2(p: u16, params: &str) -> Resp {
    ok(query(p, "ec2", params))
}

/// A VPC with a subnet in each of two zones: (subnet in us-east-1a, subnet in us-east-1b).
fn subnets(p: u16) -> (String, String) {
    let vpc = ec2(p, "Action=CreateVpc&CidrBlock=10.0.0.0/16");
    let vpc = xml(&vpc.body, "vpcId").expect("vpcId");
    let subnet = |cidr: &str, zone: &str| {
        let r = ec2(
            p,
            &format!(
                "Action=CreateSubnet&VpcId={vpc}&CidrBlock={}&AvailabilityZone={zone}",
                enc(cidr)
            ),
        );
        xml(&r.body, "subnetId").expect("subnetId")
    };
    (
        subnet("10.0.1.0/24", "us-east-1a"),
        subnet("10.0.2.0/24", "us-east-1b"),
    )
}

fn create_cluster(p: u16, name: &str, subnet: &str) {
    let body = json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "resourcesVpcConfig": {"subnetIds": [subnet]}
    });
    ok(eks(p, "POST", "/clusters", Some(body)));
}

fn create_nodegroup(p: u16, cluster: &str, body: Value) {
    let mut body = body;
    body["nodeRole"] = json!("arn:aws:iam::123456789012:role/node");
    ok(eks(
        p,
        "POST",
        &format!("/clusters/{cluster}/node-groups"),
        Some(body),
    ));
}

fn scale(p: u16, cluster: &str, ng: &str, desired: u32) {
    let body = json!({"scalingConfig": {"minSize": 0, "maxSize": 10, "desiredSize": desired}});
    ok(eks(
        p,
        "POST",
        &format!("/clusters/{cluster}/node-groups/{ng}/update-config"),
        Some(body),
    ));
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A launch template whose version 1 has `data` (form fields after `LaunchTemplateData.`);
/// returns its id.
fn create_template(p: u16, name: &str, data: &[(&str, &str)]) -> String {
    let mut params = format!("Action=CreateLaunchTemplate&LaunchTemplateName={name}");
    for (k, v) in data {
        params.push_str(&format!("&LaunchTemplateData.{k}={}", enc(v)));
    }
    let r = ec2(p, &params);
    xml(&r.body, "launchTemplateId").expect("launchTemplateId")
}

/// Every value of `<tag>` in a document.
fn all_xml(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}

/// Ids of the instances matching EC2 filters `(name, values)`, asked of moto directly
/// (so that the proxy's stats only hold the test's own requests).
fn instances(moto: &Moto, filters: &[(&str, &[&str])]) -> BTreeSet<String> {
    let mut params = String::from("Action=DescribeInstances");
    for (i, (name, values)) in filters.iter().enumerate() {
        params.push_str(&format!("&Filter.{}.Name={}", i + 1, enc(name)));
        for (j, v) in values.iter().enumerate() {
            params.push_str(&format!("&Filter.{}.Value.{}={}", i + 1, j + 1, enc(v)));
        }
    }
    let r = ec2(moto.port, &params);
    all_xml(&r.body, "instanceId").into_iter().collect()
}

const ALIVE: &[&str] = &["pending", "running"];

fn nodegroup_instances(moto: &Moto, ng: &str) -> BTreeSet<String> {
    instances(
        moto,
        &[
            ("tag:eks:nodegroup-name", &[ng]),
            ("instance-state-name", ALIVE),
        ],
    )
}

/// The Nodes with a label `key=value`.
fn nodes_with(kube: &FakeKube, key: &str, value: &str) -> Vec<Value> {
    let r = kube.call(
        "GET",
        &format!(
            "/api/v1/nodes?labelSelector={}",
            enc(&format!("{key}={value}"))
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn nodes_of(kube: &FakeKube, ng: &str) -> Vec<Value> {
    nodes_with(kube, "eks.amazonaws.com/nodegroup", ng)
}

fn all_nodes(kube: &FakeKube) -> Vec<Value> {
    let r = kube.call("GET", "/api/v1/nodes");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn instance_of(node: &Value) -> String {
    let id = node["spec"]["providerID"].as_str().unwrap_or_default();
    id.rsplit('/').next().unwrap_or_default().to_string()
}

fn pods(node: &Value) -> (String, String) {
    (
        node["status"]["capacity"]["pods"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        node["status"]["allocatable"]["pods"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn nodegroup_status(p: u16, cluster: &str, ng: &str) -> String {
    let r = ok(eks(
        p,
        "GET",
        &format!("/clusters/{cluster}/node-groups/{ng}"),
        None,
    ));
    r.json()["nodegroup"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// (status, message) of a Node's Ready condition.
fn ready(node: &Value) -> (String, String) {
    let c = node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    (
        c["status"].as_str().unwrap_or_default().to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// Polls `probe` until it gives a value or `SETTLE` runs out.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the nodegroup has `n` live instances and `n` Nodes for exactly them.
fn wait_for_fleet(w: &World, ng: &str, n: usize) -> (BTreeSet<String>, Vec<Value>) {
    wait_for(&format!("{n} instances and Nodes in {ng}"), || {
        let ids = nodegroup_instances(&w.moto, ng);
        let nodes = nodes_of(&w.kube, ng);
        let node_ids: BTreeSet<String> = nodes.iter().map(instance_of).collect();
        (ids.len() == n && node_ids == ids).then_some((ids, nodes))
    })
}

/// The tags of an instance, asked of moto.
fn tags(moto: &Moto, id: &str) -> BTreeMap<String, String> {
    let r = ec2(
        moto.port,
        &format!(
            "Action=DescribeTags&Filter.1.Name=resource-id&Filter.1.Value.1={id}&MaxResults=100"
        ),
    );
    all_xml(&r.body, "key")
        .into_iter()
        .zip(all_xml(&r.body, "value"))
        .collect()
}

#[test]
fn a_nodegroup_gets_instances_once_active_and_they_join() {
    let w = world(&["--data-plane", "--nodegroup-create-ms", "1500"]);
    let p = w.proxy.port;
    let (a, b) = subnets(p);
    create_cluster(p, "c1", &a);
    create_nodegroup(
        p,
        "c1",
        json!({
            "nodegroupName": "ng1", "subnets": [a, b], "instanceTypes": ["t3.medium"],
            "scalingConfig": {"minSize": 1, "maxSize": 5, "desiredSize": 3},
            "labels": {"team": "blue"},
            "taints": [{"key": "dedicated", "value": "blue", "effect": "NO_SCHEDULE"}]
        }),
    );
    let created = Instant::now();
    // EKS launches while CREATING and reports ACTIVE once the nodes joined and the window
    // is over.
    let (ids, _) = wait_for_fleet(&w, "ng1", 3);
    wait_for("ng1 ACTIVE", || {
        (nodegroup_status(p, "c1", "ng1") == "ACTIVE").then_some(())
    });
    assert!(created.elapsed() >= Duration::from_millis(1500));
    let nodes = wait_for("3 Ready nodes", || {
        let nodes = nodes_of(&w.kube, "ng1");
        (nodes.len() == 3 && nodes.iter().all(|n| ready(n).0 == "True")).then_some(nodes)
    });
    // Round-robin over the subnets: a, b, a.
    let in_a = instances(
        &w.moto,
        &[("subnet-id", &[&a]), ("instance-state-name", ALIVE)],
    );
    let in_b = instances(
        &w.moto,
        &[("subnet-id", &[&b]), ("instance-state-name", ALIVE)],
    );
    assert_eq!((in_a.len(), in_b.len()), (2, 1));
    assert_eq!(
        instances(&w.moto, &[("instance-type", &["t3.medium"])]),
        ids,
        "the nodegroup's instance type"
    );
    for id in &ids {
        let t = tags(&w.moto, id);
        assert_eq!(
            t.get("eks:cluster-name").map(String::as_str),
            Some("c1"),
            "{t:?}"
        );
        assert_eq!(t.get("eks:nodegroup-name").map(String::as_str), Some("ng1"));
        assert_eq!(
            t.get("kubernetes.io/cluster/c1").map(String::as_str),
            Some("owned")
        );
        assert_eq!(
            t.get("aws:eks:cluster-name").map(String::as_str),
            Some("c1")
        );
    }
    for node in &nodes {
        let name = node["metadata"]["name"].as_str().expect("name");
        assert!(
            name.starts_with("ip-10-0-") && name.ends_with(".ec2.internal"),
            "moto's private DNS name: {name}"
        );
        let id = instance_of(node);
        let zone = if in_a.contains(&id) {
            "us-east-1a"
        } else {
            "us-east-1b"
        };
        assert_eq!(
            node["spec"]["providerID"],
            format!("aws:///{zone}/{id}"),
            "{node}"
        );
        let labels = &node["metadata"]["labels"];
        for (k, v) in [
            ("topology.kubernetes.io/zone", zone),
            ("topology.kubernetes.io/region", REGION),
            ("node.kubernetes.io/instance-type", "t3.medium"),
            ("kubernetes.io/hostname", name),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("eks.amazonaws.com/nodegroup", "ng1"),
            ("eks.amazonaws.com/capacityType", "ON_DEMAND"),
            ("eks.amazonaws.com/nodegroup-image", "ami-ekslinux"),
            ("team", "blue"),
        ] {
            assert_eq!(labels[k], v, "label {k} of {node}");
        }
        assert!(labels
            .get("eks.amazonaws.com/sourceLaunchTemplateId")
            .is_none());
        // t3.medium: 3 ENIs × (6 − 1) + 2.
        assert_eq!(pods(node), ("17".to_string(), "17".to_string()));
        let addresses = node["status"]["addresses"].as_array().expect("addresses");
        let kinds: Vec<&str> = addresses
            .iter()
            .filter_map(|a| a["type"].as_str())
            .collect();
        assert_eq!(kinds, ["InternalIP", "InternalDNS", "Hostname"]);
        assert!(addresses[0]["address"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.0.")));
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .expect("Ready condition");
        assert_eq!(ready["status"], "True");
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "dedicated", "value": "blue", "effect": "NoSchedule"}])
        );
    }
    // The data plane's own calls are not the client's: none in the stats.
    let stats = w.proxy.stats();
    for op in ["RunInstances", "DescribeInstances", "ListNodegroups"] {
        assert!(
            stats["by_operation"].get(op).is_none(),
            "{op} counted: {stats}"
        );
    }
    // The seeded Nodes of another region are left alone.
    assert_eq!(
        nodes_with(&w.kube, "topology.kubernetes.io/region", "us-west-2").len(),
        2
    );
}

#[test]
fn launch_templates_and_the_cni_decide_max_pods() {
    let w = world(&["--data-plane"]);
    let p = w.proxy.port;
    let (a, _) = subnets(p);
    create_cluster(p, "c1", &a);
    let nodeconfig = |n: u32| {
        format!(
            "---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    \
             config:\n      maxPods: {n}\n"
        )
    };
    let mime = |parts: &[String]| {
        let mut doc = String::from(
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BOUNDARY\"\n\n",
        );
        for part in parts {
            doc.push_str(&format!(
                "--BOUNDARY\nContent-Type: application/node.eks.aws\n\n{part}\n"
            ));
        }
        doc.push_str("--BOUNDARY--\n");
        doc
    };
    let al2023 = create_template(p, "al2023", &[("UserData", &b64(&mime(&[nodeconfig(30)])))]);
    // Two NodeConfigs: nodeadm merges them in order, the later one wins.
    let two = create_template(
        p,
        "two",
        &[("UserData", &b64(&mime(&[nodeconfig(40), nodeconfig(50)])))],
    );
    let bottlerocket = create_template(
        p,
        "bottlerocket",
        &[(
            "UserData",
            &b64("[settings.kubernetes]\nmax-pods = 25\ncluster-name = \"c1\"\n"),
        )],
    );
    // A custom AMI whose user data sets nothing: the AMI's own ENI formula, uncapped
    // (m5.4xlarge: 8 × (30 − 1) + 2 = 234), where EKS would compute 110 (16 vCPUs).
    let custom = create_template(
        p,
        "custom",
        &[
            ("ImageId", "ami-0123456789abcdef0"),
            ("InstanceType", "m5.4xlarge"),
            ("UserData", &b64("#!/bin/bash\necho custom\n")),
        ],
    );
    let one = json!({"minSize": 1, "maxSize": 2, "desiredSize": 1});
    for (ng, template) in [
        ("al2023", Some(&al2023)),
        ("two", Some(&two)),
        ("bottlerocket", Some(&bottlerocket)),
        ("custom", Some(&custom)),
        ("big", None),
    ] {
        let mut body = json!({"nodegroupName": ng, "subnets": [a], "scalingConfig": one});
        match template {
            Some(id) => body["launchTemplate"] = json!({"id": id, "version": "1"}),
            None => body["instanceTypes"] = json!(["m5.4xlarge"]),
        }
        if ng == "bottlerocket" {
            body["amiType"] = json!("BOTTLEROCKET_x86_64");
        }
        create_nodegroup(p, "c1", body);
    }
    for (ng, want) in [
        ("al2023", "30"),
        ("two", "50"),
        ("bottlerocket", "25"),
        ("custom", "234"),
        ("big", "110"),
    ] {
        let (_, nodes) = wait_for_fleet(&w, ng, 1);
        assert_eq!(pods(&nodes[0]).0, want, "max pods of {ng}");
        assert_eq!(pods(&nodes[0]).1, want, "allocatable pods of {ng}");
    }
    let (_, nodes) = wait_for_fleet(&w, "custom", 1);
    let labels = &nodes[0]["metadata"]["labels"];
    assert_eq!(
        labels["eks.amazonaws.com/nodegroup-image"],
        "ami-0123456789abcdef0"
    );
    assert_eq!(labels["node.kubernetes.io/instance-type"], "m5.4xlarge");
    assert_eq!(
        labels["eks.amazonaws.com/sourceLaunchTemplateId"],
        custom.as_str()
    );
    assert_eq!(labels["eks.amazonaws.com/sourceLaunchTemplateVersion"], "1");

    // The CNI settings when a node launches decide: custom networking leaves the primary
    // ENI out (t3.medium: 2 × 5 + 2 = 12) for nodes launched after the switch only.
    create_nodegroup(
        p,
        "c1",
        json!({"nodegroupName": "plain", "subnets": [a], "scalingConfig": one}),
    );
    let (first, nodes) = wait_for_fleet(&w, "plain", 1);
    assert_eq!(pods(&nodes[0]).0, "17");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "aws-node",
        "env": [{"name": "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "value": "true"}]}]}}}});
    let r = request(
        w.kube.port,
        "PATCH",
        "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node",
        &[("Content-Type", "application/strategic-merge-patch+json")],
        patch.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    scale(p, "c1", "plain", 2);
    let (_, nodes) = wait_for_fleet(&w, "plain", 2);
    for node in &nodes {
        let want = if first.contains(&instance_of(node)) {
            "17"
        } else {
            "12"
        };
        assert_eq!(pods(node).0, want, "{node}");
    }
}

#[test]
fn scaling_version_updates_and_deletes_are_followed() {
    // The coredns PodDisruptionBudget holds the last node of the deleted nodegroup (its
    // pods' replacements have nowhere to run): the drain is forced after 3 s.
    let w = world(&["--data-plane", "--drain-force-ms", "3000"]);
    let p = w.proxy.port;
    let lt = two_version_nodegroup(p, "t3.small");
    let (two, _) = wait_for_fleet(&w, "ng", 2);
    scale(p, "c1", "ng", 3);
    let (three, _) = wait_for_fleet(&w, "ng", 3);
    assert!(three.is_superset(&two), "scaling out keeps the instances");
    scale(p, "c1", "ng", 1);
    let (one, nodes) = wait_for_fleet(&w, "ng", 1);
    assert!(three.is_superset(&one));
    assert_eq!(
        nodes[0]["metadata"]["labels"]["eks.amazonaws.com/sourceLaunchTemplateVersion"],
        "1"
    );
    let gone: Vec<String> = three.difference(&one).cloned().collect();
    assert_eq!(
        instances(&w.moto, &[("instance-state-name", &["terminated"])]),
        gone.iter().cloned().collect::<BTreeSet<_>>(),
        "scaled in: terminated"
    );

    // A new launch template version: a new instance first, then the old one goes.
    let r = eks(
        p,
        "POST",
        "/clusters/c1/node-groups/ng/update-version",
        Some(json!({"launchTemplate": {"id": lt, "version": "2"}})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let old = one.iter().next().cloned().expect("one instance");
    let mut saw_both = false;
    let (new, nodes) = wait_for("the rolled nodegroup", || {
        let ids = nodegroup_instances(&w.moto, "ng");
        if ids.len() == 2 && ids.contains(&old) {
            saw_both = true;
        }
        let nodes = nodes_of(&w.kube, "ng");
        let node_ids: BTreeSet<String> = nodes.iter().map(instance_of).collect();
        (ids.len() == 1 && !ids.contains(&old) && node_ids == ids).then_some((ids, nodes))
    });
    assert!(saw_both, "the new instance ran beside the old one (surge)");
    let new_id = new.iter().next().cloned().expect("new instance");
    assert_eq!(
        tags(&w.moto, &new_id)
            .get("aws:ec2launchtemplate:version")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        nodes[0]["metadata"]["labels"]["eks.amazonaws.com/sourceLaunchTemplateVersion"],
        "2"
    );
    assert!(instances(&w.moto, &[("instance-state-name", &["terminated"])]).contains(&old));

    // Deleted: its Nodes go and its instances are terminated. EKS reports the nodegroup
    // DELETING as long as an instance of it runs (the forced drain takes 3 s), then not at all.
    ok(eks(p, "DELETE", "/clusters/c1/node-groups/ng", None));
    let mut seen_deleting_with_instances = false;
    wait_for("the deleted nodegroup's instances and Nodes to go", || {
        // Described first, listed second: a nodegroup seen gone must have no instance
        // left a moment later. (Listed first, the last instance could end and the
        // nodegroup go between the two reads.)
        let described = eks(p, "GET", "/clusters/c1/node-groups/ng", None);
        let running = !nodegroup_instances(&w.moto, "ng").is_empty();
        if running {
            assert_eq!(
                described.status, 200,
                "gone while its instances run: {}",
                described.body
            );
            assert!(
                described.body.contains("\"DELETING\""),
                "{}",
                described.body
            );
            seen_deleting_with_instances = true;
        }
        (!running && nodes_of(&w.kube, "ng").is_empty()).then_some(())
    });
    assert!(
        seen_deleting_with_instances,
        "the drain took no time at all"
    );
    wait_for("the deleted nodegroup to be gone", || {
        (eks(p, "GET", "/clusters/c1/node-groups/ng", None).status == 404).then_some(())
    });
    assert!(instances(&w.moto, &[("instance-state-name", &["terminated"])]).contains(&new_id));
    // The budget refused an eviction; the forced drain then deleted the pod.
    let log = w.kube.requests();
    let coredns = |r: &Value, method: &str, end: &str| {
        r["method"] == method
            && r["path"].as_str().is_some_and(|p| {
                p.starts_with("/api/v1/namespaces/kube-system/pods/coredns-") && p.ends_with(end)
            })
    };
    assert!(
        log.iter()
            .any(|r| coredns(r, "POST", "/eviction") && r["code"] == 429),
        "an eviction refused by the coredns budget"
    );
    assert!(
        log.iter()
            .any(|r| coredns(r, "DELETE", "") && r["code"] == 200),
        "a coredns pod deleted by the forced drain"
    );
}

#[test]
fn instances_tagged_for_a_cluster_join_on_their_own() {
    let w = world(&["--data-plane"]);
    let p = w.proxy.port;
    let (a, _) = subnets(p);
    create_cluster(p, "c1", &a);
    let run = |tags: &[(&str, &str)], extra: &str| {
        let mut params = format!(
            "Action=RunInstances&ImageId=ami-ekslinux&InstanceType=t3.medium&MinCount=1\
             &MaxCount=1&SubnetId={a}{extra}"
        );
        if !tags.is_empty() {
            params.push_str("&TagSpecification.1.ResourceType=instance");
        }
        for (i, (k, v)) in tags.iter().enumerate() {
            params.push_str(&format!(
                "&TagSpecification.1.Tag.{n}.Key={}&TagSpecification.1.Tag.{n}.Value={}",
                enc(k),
                enc(v),
                n = i + 1
            ));
        }
        let r = ec2(p, &params);
        xml(&r.body, "instanceId").expect("instanceId")
    };
    let owned = run(&[("kubernetes.io/cluster/c1", "owned")], "");
    // Its AMI reads its user data: a NodeConfig.
    let config = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    \
                  config:\n      maxPods: 33\n";
    let configured = run(
        &[("kubernetes.io/cluster/c1", "owned")],
        &format!("&UserData={}", enc(&b64(config))),
    );
    let untagged = run(&[("Name", "bystander")], "");
    let shared = run(&[("kubernetes.io/cluster/c1", "shared")], "");
    let elsewhere = run(&[("kubernetes.io/cluster/nope", "owned")], "");
    let joined = |id: &str| {
        all_nodes(&w.kube)
            .into_iter()
            .find(|n| instance_of(n) == id)
    };
    let node = wait_for("the owned instance's Node", || joined(&owned));
    assert_eq!(pods(&node).0, "17", "the AMI's default for t3.medium");
    assert!(node["metadata"]["labels"]
        .get("eks.amazonaws.com/nodegroup")
        .is_none());
    let node = wait_for("the configured instance's Node", || joined(&configured));
    assert_eq!(pods(&node).0, "33");
    // A few more passes: the others never join.
    std::thread::sleep(Duration::from_secs(1));
    for id in [&untagged, &shared, &elsewhere] {
        assert!(joined(id).is_none(), "{id} joined");
    }
    // Terminated: its Node goes.
    ec2(
        p,
        &format!("Action=TerminateInstances&InstanceId.1={owned}"),
    );
    wait_for("the terminated instance's Node to go", || {
        joined(&owned).is_none().then_some(())
    });
    assert!(joined(&configured).is_some());
}

#[test]
fn off_by_default_then_switched_on() {
    let w = world(&[]);
    let p = w.proxy.port;
    let (a, _) = subnets(p);
    create_cluster(p, "c1", &a);
    create_nodegroup(p, "c1", json!({"nodegroupName": "ng", "subnets": [a]}));
    let before = all_nodes(&w.kube).len();
    std::thread::sleep(Duration::from_secs(1));
    assert!(instances(&w.moto, &[]).is_empty(), "nothing launched");
    assert_eq!(
        w.kube.requests().len(),
        1,
        "the API server was asked nothing but the test's own GET"
    );
    assert_eq!(all_nodes(&w.kube).len(), before, "nothing joined");
    assert_eq!(w.proxy.config(json!({}))["data_plane"], false);

    // Switched on at run time: moto's default nodegroup size is 2.
    w.proxy.config(json!({"data_plane": true}));
    wait_for_fleet(&w, "ng", 2);
    // Off again: the loop stops (the API server hears no more of it); a scale is no
    // longer followed.
    w.proxy.config(json!({"data_plane": false}));
    let mut heard = w.kube.requests().len();
    let mut quiet_since = Instant::now();
    wait_for("the loop to stop", || {
        let now = w.kube.requests().len();
        if now != heard {
            heard = now;
            quiet_since = Instant::now();
        }
        (quiet_since.elapsed() > Duration::from_millis(800)).then_some(())
    });
    scale(p, "c1", "ng", 3);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(nodegroup_instances(&w.moto, "ng").len(), 2);
    // The switch needs kube_url.
    let r = request(
        p,
        "POST",
        "/__proxy/config",
        &[],
        json!({"kube_url": null}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request(
        p,
        "POST",
        "/__proxy/config",
        &[],
        json!({"data_plane": true}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn a_restarted_proxy_launches_nothing_twice_and_reset_clears() {
    let moto = Moto::start();
    moto.warm(&["eks", "ec2"]);
    let kube = FakeKube::start();
    seed_foreign_nodes(&kube);
    let args = ["--kube-url", &kube.url(), "--data-plane"];
    let proxy = Proxy::start(&moto.url(), &args);
    let p = proxy.port;
    // A second access key of the same (moto's default) account: one world, not two.
    let other = "AWS4-HMAC-SHA256 Credential=AKIDOTHER/20260101/us-east-1/ec2/aws4_request, \
                 SignedHeaders=host, Signature=0";
    let r = request(
        p,
        "POST",
        "/",
        &[
            ("Authorization", other),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"Action=DescribeVpcs&Version=2016-11-15",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (a, b) = subnets(p);
    create_cluster(p, "c1", &a);
    create_nodegroup(
        p,
        "c1",
        json!({"nodegroupName": "ng", "subnets": [a, b],
               "scalingConfig": {"minSize": 1, "maxSize": 5, "desiredSize": 2}}),
    );
    let w = World { moto, kube, proxy };
    let (ids, _) = wait_for_fleet(&w, "ng", 2);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(instances(&w.moto, &[]), ids, "launched once for both keys");
    let World { moto, kube, proxy } = w;
    drop(proxy);

    // A new proxy on the same moto and API server finds the instances by their tags.
    let proxy = Proxy::start(&moto.url(), &args);
    ok(eks(proxy.port, "GET", "/clusters", None));
    let w = World { moto, kube, proxy };
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        nodegroup_instances(&w.moto, "ng"),
        ids,
        "nothing launched again"
    );
    assert_eq!(
        instances(&w.moto, &[]).len(),
        2,
        "no instance at all besides them"
    );
    assert_eq!(nodes_of(&w.kube, "ng").len(), 2);

    // Reset: moto forgets the instances; their Nodes go (their instances are unknown to
    // EC2), the other region's seeded Nodes stay.
    let r = request(w.proxy.port, "POST", "/__proxy/reset", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("the Nodes of forgotten instances to go", || {
        nodes_with(&w.kube, "topology.kubernetes.io/region", REGION)
            .is_empty()
            .then_some(())
    });
    assert_eq!(
        nodes_with(&w.kube, "topology.kubernetes.io/region", "us-west-2").len(),
        2
    );
}

// ---- VPC CNI, pods, teardown ----------------------------------------------------------

const NOT_READY: &str = "container runtime network not ready: NetworkReady=false \
reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized";

fn kube_send(kube: &FakeKube, method: &str, path: &str, ct: &str, body: &Value) -> Resp {
    let r = request(
        kube.port,
        method,
        path,
        &[("Content-Type", ct)],
        body.to_string().as_bytes(),
    );
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.body);
    r
}

/// Sets env entries of the `aws-node` container (a strategic merge, by name).
fn set_cni_env(kube: &FakeKube, env: &[(&str, &str)]) {
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    kube_send(
        kube,
        "PATCH",
        "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node",
        "application/strategic-merge-patch+json",
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": env}]}}}}),
    );
}

fn create_eniconfig(kube: &FakeKube, name: &str, subnet: &str) {
    kube_send(
        kube,
        "POST",
        "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs",
        "application/json",
        &json!({"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
                "metadata": {"name": name}, "spec": {"subnet": subnet}}),
    );
}

/// A DaemonSet `app` of non-host pods in `default`.
fn create_app_daemonset(kube: &FakeKube) {
    kube_send(
        kube,
        "POST",
        "/apis/apps/v1/namespaces/default/daemonsets",
        "application/json",
        &json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "app"},
            "spec": {"selector": {"matchLabels": {"app": "app"}},
              "template": {"metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}}),
    );
}

fn create_pod(kube: &FakeKube, name: &str, selector: Value) {
    kube_send(
        kube,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeSelector": selector, "containers": [{"name": "c", "image": "nginx"}]}}),
    );
}

fn all_pods(kube: &FakeKube) -> Vec<Value> {
    let r = kube.call("GET", "/api/v1/pods");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn pods_on(kube: &FakeKube, node: &str) -> Vec<Value> {
    all_pods(kube)
        .into_iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .collect()
}

/// A VPC 10.0.0.0/16 with node subnets in us-east-1a/b and pod subnets 10.0.64.0/24
/// (1a) and 10.0.65.0/24 (1b): (a, b, pod a, pod b).
fn vpc_with_pod_subnets(p: u16) -> (String, String, String, String) {
    let vpc = ec2(p, "Action=CreateVpc&CidrBlock=10.0.0.0/16");
    let vpc = xml(&vpc.body, "vpcId").expect("vpcId");
    let subnet = |cidr: &str, zone: &str| {
        let r = ec2(
            p,
            &format!(
                "Action=CreateSubnet&VpcId={vpc}&CidrBlock={}&AvailabilityZone={zone}",
                enc(cidr)
            ),
        );
        xml(&r.body, "subnetId").expect("subnetId")
    };
    (
        subnet("10.0.1.0/24", "us-east-1a"),
        subnet("10.0.2.0/24", "us-east-1b"),
        subnet("10.0.64.0/24", "us-east-1a"),
        subnet("10.0.65.0/24", "us-east-1b"),
    )
}

/// An ENI as DescribeNetworkInterfaces shows it.
#[derive(Debug)]
struct EniView {
    id: String,
    subnet: String,
    status: String,
    device_index: Option<u32>,
    secondaries: Vec<String>,
    description: String,
    groups: Vec<String>,
    /// The primary address.
    address: String,
}

fn enis(moto: &Moto, filter: &str, value: &str) -> Vec<EniView> {
    let r = ec2(
        moto.port,
        &format!(
            "Action=DescribeNetworkInterfaces&Filter.1.Name={}&Filter.1.Value.1={}",
            enc(filter),
            enc(value)
        ),
    );
    let body = r.body;
    let Some(set) = body.split_once("<networkInterfaceSet>").map(|x| x.1) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Items start at `<item><attachment>` or `<item><availabilityZone>` (detached).
    let mut rest = set;
    while let Some(start) = rest.find("<item><a") {
        rest = &rest[start + 6..];
        let end = rest.find("<vpcId>").unwrap_or(rest.len());
        let item = &rest[..end];
        let secondaries = item
            .split("<primary>false</primary><privateIpAddress>")
            .skip(1)
            .filter_map(|s| s.split('<').next())
            .map(str::to_string)
            .collect();
        out.push(EniView {
            id: xml(item, "networkInterfaceId").unwrap_or_default(),
            subnet: xml(item, "subnetId").unwrap_or_default(),
            status: all_xml(item, "status").last().cloned().unwrap_or_default(),
            device_index: xml(item, "deviceIndex").and_then(|d| d.parse().ok()),
            secondaries,
            description: xml(item, "description").unwrap_or_default(),
            groups: all_xml(item, "groupId"),
            address: item
                .split("<primary>true</primary><privateIpAddress>")
                .nth(1)
                .and_then(|s| s.split('<').next())
                .unwrap_or_default()
                .to_string(),
        });
        rest = &rest[end..];
    }
    out
}

fn available_ips(p: u16, subnet: &str) -> u32 {
    let r = ec2(p, &format!("Action=DescribeSubnets&SubnetId.1={subnet}"));
    xml(&r.body, "availableIpAddressCount")
        .and_then(|n| n.parse().ok())
        .expect("availableIpAddressCount")
}

fn pod_ip(pod: &Value) -> Option<String> {
    pod["status"]["podIP"].as_str().map(str::to_string)
}

fn node_in_zone(kube: &FakeKube, ng: &str, zone: &str) -> Value {
    nodes_of(kube, ng)
        .into_iter()
        .find(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone)
        .unwrap_or_else(|| panic!("no node of {ng} in {zone}"))
}

#[test]
fn custom_networking_gives_pods_eniconfig_subnet_addresses() {
    let w = world(&["--data-plane"]);
    let p = w.proxy.port;
    let (a, b, pa, pb) = vpc_with_pod_subnets(p);
    set_cni_env(
        &w.kube,
        &[
            ("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true"),
            ("ENI_CONFIG_LABEL_DEF", "topology.kubernetes.io/zone"),
        ],
    );
    create_eniconfig(&w.kube, "us-east-1a", &pa);
    create_app_daemonset(&w.kube);
    let pa_before = available_ips(p, &pa);
    create_cluster(p, "c1", &a);
    create_nodegroup(
        p,
        "c1",
        json!({"nodegroupName": "ng", "subnets": [a, b], "instanceTypes": ["t3.medium"],
               "scalingConfig": {"minSize": 1, "maxSize": 5, "desiredSize": 2}}),
    );
    wait_for_fleet(&w, "ng", 2);
    let node_a = wait_for("the 1a node Ready", || {
        let n = node_in_zone(&w.kube, "ng", "us-east-1a");
        (ready(&n).0 == "True").then_some(n)
    });
    let name_a = node_a["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let inst_a = instance_of(&node_a);
    // (b) no ENIConfig for us-east-1b: NotReady with the kubelet's message.
    std::thread::sleep(Duration::from_secs(1));
    let node_b = node_in_zone(&w.kube, "ng", "us-east-1b");
    let name_b = node_b["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert_eq!(ready(&node_b), ("False".to_string(), NOT_READY.to_string()));

    create_pod(
        &w.kube,
        "web",
        json!({"topology.kubernetes.io/zone": "us-east-1a"}),
    );
    let running = wait_for("app and web Running on the 1a node", || {
        let pods = pods_on(&w.kube, &name_a);
        let with_ip: Vec<Value> = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" && pod_ip(p).is_some())
            .filter(|p| p["metadata"]["name"] == "web" || p["metadata"]["labels"]["app"] == "app")
            .cloned()
            .collect();
        (with_ip.len() == 2).then_some(with_ip)
    });
    let attached = enis(&w.moto, "attachment.instance-id", &inst_a);
    let primary = attached
        .iter()
        .find(|e| e.device_index == Some(0))
        .expect("primary ENI");
    assert!(
        primary.secondaries.is_empty(),
        "the primary ENI gives pods nothing: {primary:?}"
    );
    let secondary = attached
        .iter()
        .find(|e| e.device_index == Some(1))
        .expect("an ENI made by the CNI");
    assert_eq!(secondary.subnet, pa, "in the ENIConfig's subnet");
    assert_eq!(
        secondary.secondaries.len(),
        5,
        "t3.medium: 6 addresses per ENI − 1"
    );
    for pod in &running {
        let ip = pod_ip(pod).expect("ip");
        assert!(
            secondary.secondaries.contains(&ip),
            "{ip} not on {secondary:?}"
        );
        assert_eq!(
            pod["status"]["hostIP"],
            node_a["status"]["addresses"][0]["address"]
        );
    }
    let t = tags(&w.moto, &secondary.id);
    assert_eq!(
        t.get("node.k8s.amazonaws.com/instance_id")
            .map(String::as_str),
        Some(inst_a.as_str())
    );
    assert!(t.contains_key("node.k8s.amazonaws.com/createdAt"), "{t:?}");
    assert_eq!(
        available_ips(p, &pa),
        pa_before - 6,
        "the ENI and its 5 addresses"
    );

    // On the NotReady node: the app pod waits without an address.
    let waiting = wait_for("app pod waiting on the 1b node", || {
        pods_on(&w.kube, &name_b).into_iter().find(|p| {
            p["metadata"]["labels"]["app"] == "app"
                && p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "ContainerCreating"
        })
    });
    assert_eq!(waiting["status"]["phase"], "Pending");
    assert!(pod_ip(&waiting).is_none());

    // The ENIConfig appears: aws-node's next start succeeds.
    create_eniconfig(&w.kube, "us-east-1b", &pb);
    wait_for("the 1b node Ready", || {
        (ready(&node_in_zone(&w.kube, "ng", "us-east-1b")).0 == "True").then_some(())
    });
    let inst_b = instance_of(&node_b);
    let ip = wait_for("the app pod on 1b gets an address", || {
        pods_on(&w.kube, &name_b)
            .into_iter()
            .find(|p| p["metadata"]["labels"]["app"] == "app")
            .and_then(|p| pod_ip(&p))
    });
    let on_b: Vec<String> = enis(&w.moto, "attachment.instance-id", &inst_b)
        .into_iter()
        .filter(|e| e.subnet == pb)
        .flat_map(|e| e.secondaries)
        .collect();
    assert!(on_b.contains(&ip), "{ip} not in {on_b:?}");
}

#[test]
fn without_custom_networking_pods_use_the_node_subnet_and_prefixes_are_aligned() {
    let w = world(&["--data-plane"]);
    let p = w.proxy.port;
    let (a, _b) = subnets(p);
    create_app_daemonset(&w.kube);
    create_cluster(p, "c1", &a);
    create_nodegroup(
        p,
        "c1",
        json!({"nodegroupName": "plain", "subnets": [a], "instanceTypes": ["m5.large"],
               "scalingConfig": {"minSize": 1, "maxSize": 5, "desiredSize": 1}}),
    );
    let (ids, nodes) = wait_for_fleet(&w, "plain", 1);
    let inst = ids.iter().next().cloned().expect("instance");
    let name = nodes[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let ip = wait_for("the app pod's address", || {
        pods_on(&w.kube, &name)
            .into_iter()
            .find(|p| p["metadata"]["labels"]["app"] == "app")
            .and_then(|p| pod_ip(&p))
    });
    let attached = enis(&w.moto, "attachment.instance-id", &inst);
    let primary = attached
        .iter()
        .find(|e| e.device_index == Some(0))
        .expect("primary");
    assert_eq!(primary.subnet, a);
    // m5.large: 10 addresses per ENI, 9 for pods, on the primary ENI first.
    assert_eq!(primary.secondaries.len(), 9, "{primary:?}");
    assert!(primary.secondaries.contains(&ip));
    assert!(ip.starts_with("10.0.1."));

    // Prefix delegation for nodes that start from now on.
    set_cni_env(&w.kube, &[("ENABLE_PREFIX_DELEGATION", "true")]);
    create_nodegroup(
        p,
        "c1",
        json!({"nodegroupName": "pd", "subnets": [a], "instanceTypes": ["m5.large"],
               "scalingConfig": {"minSize": 1, "maxSize": 5, "desiredSize": 1}}),
    );
    let (ids, nodes) = wait_for_fleet(&w, "pd", 1);
    let inst = ids.iter().next().cloned().expect("instance");
    let name = nodes[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let ip = wait_for("the app pod's address on the pd node", || {
        pods_on(&w.kube, &name)
            .into_iter()
            .find(|p| p["metadata"]["labels"]["app"] == "app")
            .and_then(|p| pod_ip(&p))
    });
    let primary = enis(&w.moto, "attachment.instance-id", &inst)
        .into_iter()
        .find(|e| e.device_index == Some(0))
        .expect("primary");
    assert_eq!(primary.secondaries.len(), 16, "one /28: {primary:?}");
    let last: Vec<u32> = primary
        .secondaries
        .iter()
        .filter_map(|s| s.rsplit('.').next()?.parse().ok())
        .collect();
    let base = last[0];
    assert_eq!(base % 16, 0, "aligned /28: {last:?}");
    assert_eq!(last, (base..base + 16).collect::<Vec<_>>());
    assert!(primary.secondaries.contains(&ip));
}

#[test]
fn a_deleted_nodegroup_leaves_available_enis_that_block_the_subnet_for_a_while() {
    // The seed's coredns budget holds the only node once both its pods are Ready (their
    // replacements have nowhere to go): the drain is forced after a second, not minutes.
    let w = world(&[
        "--data-plane",
        "--eni-cleanup-ms",
        "5000",
        "--drain-force-ms",
        "1000",
    ]);
    let p = w.proxy.port;
    let (a, b, pa, _pb) = vpc_with_pod_subnets(p);
    set_cni_env(&w.kube, &[("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true")]);
    create_eniconfig(&w.kube, "default", &pa);
    create_cluster(p, "c1", &a);
    create_nodegroup(
        p,
        "c1",
        json!({"nodegroupName": "ng", "subnets": [a, b],
               "scalingConfig": {"minSize": 1, "maxSize": 5, "desiredSize": 1}}),
    );
    let (ids, _) = wait_for_fleet(&w, "ng", 1);
    let inst = ids.iter().next().cloned().expect("instance");
    let eni = wait_for("the CNI's ENI", || {
        enis(&w.moto, "attachment.instance-id", &inst)
            .into_iter()
            .find(|e| e.device_index == Some(1))
    });
    assert_eq!(eni.subnet, pa);
    ok(eks(p, "DELETE", "/clusters/c1/node-groups/ng", None));
    let ended = wait_for("the ENI detached", || {
        let e = enis(&w.moto, "network-interface-id", &eni.id);
        (e.len() == 1 && e[0].status == "available").then(Instant::now)
    });
    assert!(instances(&w.moto, &[("instance-state-name", &["terminated"])]).contains(&inst));
    let r = query(p, "ec2", &format!("Action=DeleteSubnet&SubnetId={pa}"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("DependencyViolation"), "{}", r.body);
    assert!(
        r.body.contains(&format!(
            "The subnet '{pa}' has dependencies and cannot be deleted."
        )),
        "{}",
        r.body
    );
    wait_for("the ENI deleted after the window", || {
        enis(&w.moto, "network-interface-id", &eni.id)
            .is_empty()
            .then_some(())
    });
    assert!(
        ended.elapsed() >= Duration::from_millis(4000),
        "deleted too early"
    );
    ok(query(
        p,
        "ec2",
        &format!("Action=DeleteSubnet&SubnetId={pa}"),
    ));
}

#[test]
fn a_nodegroup_stays_creating_until_its_nodes_registered() {
    // The cluster is CREATING longer than the nodegroup's window: instances launch, but
    // cannot join before the cluster is ACTIVE.
    let w = world(&[
        "--data-plane",
        "--cluster-create-ms",
        "5000",
        "--nodegroup-create-ms",
        "500",
    ]);
    let p = w.proxy.port;
    let (a, b) = subnets(p);
    create_cluster(p, "c1", &a);
    let created = Instant::now();
    create_nodegroup(
        p,
        "c1",
        json!({"nodegroupName": "ng", "subnets": [a, b],
               "scalingConfig": {"minSize": 1, "maxSize": 5, "desiredSize": 2}}),
    );
    wait_for("instances launched while CREATING", || {
        (nodegroup_instances(&w.moto, "ng").len() == 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        created.elapsed() < Duration::from_millis(4500),
        "too slow to judge"
    );
    assert!(nodes_of(&w.kube, "ng").is_empty());
    assert_eq!(
        nodegroup_status(p, "c1", "ng"),
        "CREATING",
        "past its 500 ms window"
    );
    wait_for("ACTIVE", || {
        (nodegroup_status(p, "c1", "ng") == "ACTIVE").then_some(())
    });
    assert!(created.elapsed() >= Duration::from_millis(4500));
    assert_eq!(
        nodes_of(&w.kube, "ng").len(),
        2,
        "ACTIVE only once both registered"
    );
}

// ---- Deployments, ReplicaSets, drains that honour PodDisruptionBudgets --------------------

/// The seed's coredns pods (`k8s-app=kube-dns`).
fn coredns_pods(kube: &FakeKube) -> Vec<Value> {
    all_pods(kube)
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["k8s-app"] == "kube-dns")
        .collect()
}

/// Running, Ready, with an address, and not being deleted.
fn serving_pod(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && pod_ip(p).is_some()
        && p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn name(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Two serving coredns pods, on two different Nodes among `nodes`: them.
fn coredns_spread_over(kube: &FakeKube, nodes: &BTreeSet<String>) -> Option<Vec<Value>> {
    let pods = coredns_pods(kube);
    let on: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
        .collect();
    (pods.len() == 2 && pods.iter().all(serving_pod) && on.len() == 2 && on.is_subset(nodes))
        .then_some(pods)
}

/// A cluster `c1` and a nodegroup `ng` of 2 nodes over two zones, on version 1 of a launch
/// template that has a version 2 (same instance type) to roll to; returns the template id.
fn two_version_nodegroup(p: u16, instance_type: &str) -> String {
    let (a, b) = subnets(p);
    create_cluster(p, "c1", &a);
    let lt = create_template(p, "lt", &[("InstanceType", instance_type)]);
    ec2(
        p,
        &format!(
            "Action=CreateLaunchTemplateVersion&LaunchTemplateId={lt}\
             &LaunchTemplateData.InstanceType={instance_type}"
        ),
    );
    create_nodegroup(
        p,
        "c1",
        json!({"nodegroupName": "ng", "subnets": [a, b],
               "scalingConfig": {"minSize": 0, "maxSize": 10, "desiredSize": 2},
               "launchTemplate": {"id": lt, "version": "1"}}),
    );
    lt
}

#[test]
fn coredns_runs_as_a_deployment_and_a_version_update_honours_its_budget() {
    let w = world(&["--data-plane"]);
    let p = w.proxy.port;
    let lt = two_version_nodegroup(p, "t3.medium");
    let (first, nodes) = wait_for_fleet(&w, "ng", 2);
    let first_nodes: BTreeSet<String> = nodes.iter().map(name).collect();
    let pods = wait_for("two coredns pods Running, one per node", || {
        coredns_spread_over(&w.kube, &first_nodes)
    });

    // The Deployment's ReplicaSet, with the pod-template hash, owning the pods.
    let r = w
        .kube
        .call("GET", "/apis/apps/v1/namespaces/kube-system/replicasets");
    assert_eq!(r.status, 200, "{}", r.body);
    let rss = r.json()["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(rss.len(), 1, "{rss:?}");
    let rs = &rss[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("pod-template-hash label")
        .to_string();
    assert!(
        !hash.is_empty()
            && hash.len() <= 10
            && hash
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{hash}"
    );
    assert_eq!(name(rs), format!("coredns-{hash}"));
    assert_eq!(rs["spec"]["replicas"], 2);
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        hash
    );
    let owner = &rs["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["controller"]),
        (&json!("Deployment"), &json!("coredns"), &json!(true))
    );
    for pod in &pods {
        let n = name(pod);
        let suffix = n
            .strip_prefix(&format!("coredns-{hash}-"))
            .unwrap_or_else(|| panic!("{n}"));
        assert_eq!(suffix.len(), 5, "{n}");
        assert_eq!(pod["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(
            pod["metadata"]["ownerReferences"][0]["uid"],
            rs["metadata"]["uid"]
        );
    }
    wait_for("the Deployment's status", || {
        let r = w.kube.call(
            "GET",
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
        );
        let d = r.json();
        let s = &d["status"];
        (s["replicas"] == 2
            && s["readyReplicas"] == 2
            && s["availableReplicas"] == 2
            && s["updatedReplicas"] == 2
            && s["observedGeneration"] == d["metadata"]["generation"])
            .then_some(())
    });

    // A pod deleted: the ReplicaSet makes another.
    let victim = name(&pods[0]);
    let r = w.kube.call(
        "DELETE",
        &format!("/api/v1/namespaces/kube-system/pods/{victim}"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let pods = wait_for("a replacement coredns pod", || {
        coredns_spread_over(&w.kube, &first_nodes).filter(|ps| ps.iter().all(|p| name(p) != victim))
    });
    let before_roll: BTreeSet<String> = pods.iter().map(name).collect();

    // A new launch template version: new nodes first, then the old ones drained one at a
    // time through evictions that the coredns PodDisruptionBudget (maxUnavailable 1) holds
    // back until the evicted pod's replacement is Ready.
    let r = eks(
        p,
        "POST",
        "/clusters/c1/node-groups/ng/update-version",
        Some(json!({"launchTemplate": {"id": lt, "version": "2"}})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(90);
    let final_pods = loop {
        let serving: Vec<Value> = coredns_pods(&w.kube)
            .into_iter()
            .filter(serving_pod)
            .collect();
        assert!(
            !serving.is_empty(),
            "no coredns pod serving during the roll: {:?}",
            coredns_pods(&w.kube)
                .iter()
                .map(|p| format!(
                    "{} {} {}",
                    name(p),
                    p["spec"]["nodeName"],
                    p["status"]["phase"]
                ))
                .collect::<Vec<_>>()
        );
        let ids = nodegroup_instances(&w.moto, "ng");
        let nodes = nodes_of(&w.kube, "ng");
        let node_ids: BTreeSet<String> = nodes.iter().map(instance_of).collect();
        let names: BTreeSet<String> = nodes.iter().map(name).collect();
        if ids.len() == 2 && ids.is_disjoint(&first) && node_ids == ids {
            if let Some(ps) = coredns_spread_over(&w.kube, &names) {
                break ps;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for the roll");
        std::thread::sleep(Duration::from_millis(50));
    };
    for pod in &final_pods {
        assert!(
            !before_roll.contains(&name(pod)),
            "{} was not replaced",
            name(pod)
        );
    }
    let evictions: Vec<Value> = w
        .kube
        .requests()
        .into_iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"].as_str().is_some_and(|p| {
                    p.starts_with("/api/v1/namespaces/kube-system/pods/coredns-")
                        && p.ends_with("/eviction")
                })
        })
        .collect();
    let codes: Vec<u64> = evictions
        .iter()
        .filter_map(|r| r["code"].as_u64())
        .collect();
    assert!(
        codes.contains(&429),
        "a budget refusal while the first evicted pod's replacement was not Ready: {codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == 201).count(),
        2,
        "each old pod evicted once: {codes:?}"
    );
}

// Auto Scaling groups of self-managed nodes (EKS user guide, `nodes/worker.adoc`): a group
// over a launch template, its instances tagged for the cluster through the group's tags.

fn autoscaling(p: u16, params: &str) -> Resp {
    ok(query(p, "autoscaling", params))
}

/// A launch template of self-managed nodes whose user data sets `maxPods: 33`, and a group
/// `name` of `desired` instances over `subnets`, tagged for cluster c1 at launch.
fn create_group(p: u16, name: &str, subnets: &[&str], desired: u32) {
    let config = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    \
                  name: c1\n  kubelet:\n    config:\n      maxPods: 33\n";
    let template = create_template(
        p,
        &format!("{name}-lt"),
        &[
            ("ImageId", "ami-ekslinux"),
            ("InstanceType", "t3.medium"),
            ("UserData", &b64(config)),
        ],
    );
    let tags = [
        ("kubernetes.io/cluster/c1", "owned", true),
        ("Name", "self-managed", true),
        ("team", "red", false),
    ];
    let mut params = format!(
        "Action=CreateAutoScalingGroup&AutoScalingGroupName={name}&MinSize=0&MaxSize=4\
         &DesiredCapacity={desired}&LaunchTemplate.LaunchTemplateId={template}\
         &VPCZoneIdentifier={}",
        enc(&subnets.join(","))
    );
    for (i, (k, v, propagate)) in tags.iter().enumerate() {
        params.push_str(&format!(
            "&Tags.member.{n}.Key={}&Tags.member.{n}.Value={}&Tags.member.{n}.PropagateAtLaunch={propagate}",
            enc(k),
            enc(v),
            n = i + 1
        ));
    }
    autoscaling(p, &params);
}

/// A group as moto lists it: (desired capacity, instance → (zone, health)).
fn group_view(moto: &Moto, name: &str) -> (u32, BTreeMap<String, (String, String)>) {
    let r = autoscaling(
        moto.port,
        &format!("Action=DescribeAutoScalingGroups&AutoScalingGroupNames.member.1={name}"),
    );
    let desired = xml(&r.body, "DesiredCapacity")
        .and_then(|d| d.parse().ok())
        .expect("DesiredCapacity");
    let ids = all_xml(&r.body, "InstanceId");
    let zones = all_xml(&r.body, "AvailabilityZone");
    let health = all_xml(&r.body, "HealthStatus");
    assert_eq!((ids.len(), zones.len()), (health.len(), ids.len()));
    let members = ids.into_iter().zip(zones.into_iter().zip(health)).collect();
    (desired, members)
}

/// The live instances launched for a group, by zone.
fn group_instances(moto: &Moto, name: &str) -> BTreeMap<String, String> {
    let ids = instances(
        moto,
        &[
            ("tag:aws:autoscaling:groupName", &[name]),
            ("instance-state-name", ALIVE),
        ],
    );
    let in_a = instances(moto, &[("availability-zone", &["us-east-1a"])]);
    ids.into_iter()
        .map(|id| {
            let zone = if in_a.contains(&id) {
                "us-east-1a"
            } else {
                "us-east-1b"
            };
            (id, zone.to_string())
        })
        .collect()
}

fn instance_state(moto: &Moto, id: &str) -> String {
    let r = ec2(
        moto.port,
        &format!("Action=DescribeInstances&InstanceId.1={id}"),
    );
    let body = r.body;
    body.find("<instanceState>")
        .map(|at| &body[at..])
        .and_then(|s| xml(s, "name"))
        .unwrap_or_default()
}

/// Waits until the group has `n` live instances, one zone holding at most one more than
/// the other, all of them its members, and Ready Nodes for exactly them; returns instance
/// → zone.
fn wait_for_group(w: &World, name: &str, n: usize) -> BTreeMap<String, String> {
    wait_for(
        &format!("{n} instances of {name}, balanced, with their Nodes"),
        || {
            let live = group_instances(&w.moto, name);
            let (_, members) = group_view(&w.moto, name);
            let in_a = live.values().filter(|z| *z == "us-east-1a").count();
            let balanced = in_a.abs_diff(live.len() - in_a) <= 1;
            let member_ids: BTreeSet<&String> = members.keys().collect();
            let live_ids: BTreeSet<&String> = live.keys().collect();
            let nodes: Vec<Value> = all_nodes(&w.kube)
                .into_iter()
                .filter(|node| live.contains_key(&instance_of(node)) || node_of_group(node))
                .collect();
            let node_ids: BTreeSet<String> = nodes.iter().map(instance_of).collect();
            let ready = nodes.iter().all(|node| ready(node).0 == "True");
            (live.len() == n
                && balanced
                && member_ids == live_ids
                && node_ids == live.keys().cloned().collect()
                && ready)
                .then_some(live)
        },
    )
}

/// A Node of the seeded foreign region is no group's; every other Node in these tests is.
fn node_of_group(node: &Value) -> bool {
    node["metadata"]["labels"]["topology.kubernetes.io/region"] == REGION
}

/// The cluster, two subnets and a group `sm` of two self-managed nodes, joined.
fn self_managed(args: &[&str]) -> (World, BTreeMap<String, String>) {
    let mut all = vec!["--data-plane"];
    all.extend_from_slice(args);
    let w = world(&all);
    let p = w.proxy.port;
    let (a, b) = subnets(p);
    create_cluster(p, "c1", &a);
    create_group(p, "sm", &[&a, &b], 2);
    let live = wait_for_group(&w, "sm", 2);
    (w, live)
}

fn in_zone(live: &BTreeMap<String, String>, zone: &str) -> String {
    live.iter()
        .find(|(_, z)| *z == zone)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no instance in {zone}: {live:?}"))
}

#[test]
fn an_auto_scaling_group_spreads_over_its_zones_and_its_instances_join() {
    let (w, live) = self_managed(&[]);
    // moto launches both into the first subnet; AWS spreads them, one per zone.
    let zones: BTreeSet<&String> = live.values().collect();
    assert_eq!(zones.len(), 2, "{live:?}");
    let (desired, members) = group_view(&w.moto, "sm");
    assert_eq!(desired, 2);
    assert_eq!(
        members.keys().collect::<BTreeSet<_>>(),
        live.keys().collect::<BTreeSet<_>>()
    );
    for (id, zone) in &live {
        let t = tags(&w.moto, id);
        for (k, v) in [
            ("kubernetes.io/cluster/c1", "owned"),
            ("Name", "self-managed"),
            ("aws:autoscaling:groupName", "sm"),
        ] {
            assert_eq!(t.get(k).map(String::as_str), Some(v), "{id}: {t:?}");
        }
        assert!(!t.contains_key("team"), "not propagated: {t:?}");
        let node = all_nodes(&w.kube)
            .into_iter()
            .find(|n| instance_of(n) == *id)
            .expect("its Node");
        assert_eq!(node["spec"]["providerID"], format!("aws:///{zone}/{id}"));
        assert_eq!(pods(&node).0, "33", "the launch template's NodeConfig");
        assert!(node["metadata"]["labels"]
            .get("eks.amazonaws.com/nodegroup")
            .is_none());
    }
    // It stays so: no churn once balanced.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(group_instances(&w.moto, "sm"), live);
}

#[test]
fn an_instance_terminated_or_stopped_is_replaced_in_its_zone() {
    let (w, live) = self_managed(&[]);
    let p = w.proxy.port;
    // Terminated with EC2's TerminateInstances: the health check replaces it, in the zone
    // it left (moto would launch into the first subnet).
    let old = in_zone(&live, "us-east-1b");
    let launched = instances(&w.moto, &[]).len();
    ec2(p, &format!("Action=TerminateInstances&InstanceId.1={old}"));
    let after = wait_for_group(&w, "sm", 2);
    assert_eq!(
        instances(&w.moto, &[]).len(),
        launched + 1,
        "one launch, straight into the zone (none into the first subnet, then moved)"
    );
    assert!(!after.contains_key(&old));
    let new = in_zone(&after, "us-east-1b");
    assert_ne!(new, old);
    assert_eq!(in_zone(&after, "us-east-1a"), in_zone(&live, "us-east-1a"));
    assert_eq!(group_view(&w.moto, "sm").0, 2, "the desired capacity kept");
    assert_eq!(pods(&node_for(&w, &new)).0, "33");
    assert!(
        all_nodes(&w.kube).iter().all(|n| instance_of(n) != old),
        "the terminated instance's Node is deleted"
    );
    // Stopped: not running, so unhealthy; moto does nothing, AWS replaces it.
    let stopped = in_zone(&after, "us-east-1a");
    let launched = instances(&w.moto, &[]).len();
    ec2(p, &format!("Action=StopInstances&InstanceId.1={stopped}"));
    let last = wait_for_group(&w, "sm", 2);
    assert_eq!(instances(&w.moto, &[]).len(), launched + 1);
    assert!(!last.contains_key(&stopped));
    assert_ne!(in_zone(&last, "us-east-1a"), stopped);
    assert_eq!(instance_state(&w.moto, &stopped), "terminated");
    assert_eq!(group_view(&w.moto, "sm").0, 2);
}

fn node_for(w: &World, id: &str) -> Value {
    all_nodes(&w.kube)
        .into_iter()
        .find(|n| instance_of(n) == id)
        .unwrap_or_else(|| panic!("no Node for {id}"))
}

#[test]
fn terminate_instance_in_auto_scaling_group_replaces_unless_it_decrements() {
    let (w, live) = self_managed(&[]);
    let p = w.proxy.port;
    let old = in_zone(&live, "us-east-1b");
    let launched = instances(&w.moto, &[]).len();
    let r = autoscaling(
        p,
        &format!(
            "Action=TerminateInstanceInAutoScalingGroup&InstanceId={old}\
             &ShouldDecrementDesiredCapacity=false"
        ),
    );
    assert!(r.body.contains(&old), "{}", r.body);
    let after = wait_for_group(&w, "sm", 2);
    assert_eq!(instances(&w.moto, &[]).len(), launched + 1);
    let new = in_zone(&after, "us-east-1b");
    assert_ne!(new, old);
    assert_eq!(instance_state(&w.moto, &old), "terminated");
    assert_eq!(group_view(&w.moto, "sm").0, 2);
    // With the decrement the group shrinks: nothing replaces it.
    autoscaling(
        p,
        &format!(
            "Action=TerminateInstanceInAutoScalingGroup&InstanceId={new}\
             &ShouldDecrementDesiredCapacity=true"
        ),
    );
    let one = wait_for_group(&w, "sm", 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(group_instances(&w.moto, "sm"), one);
    assert_eq!(group_view(&w.moto, "sm").0, 1);
}

#[test]
fn suspended_replace_unhealthy_replaces_nothing_until_resumed() {
    let (w, live) = self_managed(&[]);
    let p = w.proxy.port;
    autoscaling(
        p,
        "Action=SuspendProcesses&AutoScalingGroupName=sm&ScalingProcesses.member.1=ReplaceUnhealthy",
    );
    let terminated = in_zone(&live, "us-east-1b");
    let stopped = in_zone(&live, "us-east-1a");
    ec2(
        p,
        &format!("Action=TerminateInstances&InstanceId.1={terminated}"),
    );
    ec2(p, &format!("Action=StopInstances&InstanceId.1={stopped}"));
    // The stopped one is marked Unhealthy by the health check, and stays.
    wait_for("the stopped instance marked Unhealthy", || {
        let (_, members) = group_view(&w.moto, "sm");
        (members.get(&stopped).map(|(_, h)| h.as_str()) == Some("Unhealthy")).then_some(())
    });
    wait_for("the terminated instance's Node to go", || {
        all_nodes(&w.kube)
            .iter()
            .all(|n| instance_of(n) != terminated)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        group_instances(&w.moto, "sm").is_empty(),
        "nothing launched: {:?}",
        group_instances(&w.moto, "sm")
    );
    let (desired, members) = group_view(&w.moto, "sm");
    assert_eq!(
        members.keys().collect::<Vec<_>>(),
        [&stopped],
        "the terminated one left the group"
    );
    // moto cannot hold a group below its desired capacity: the terminated instance took
    // one off it.
    assert_eq!(desired, 1);
    // Resumed: the stopped instance is replaced.
    autoscaling(
        p,
        "Action=ResumeProcesses&AutoScalingGroupName=sm&ScalingProcesses.member.1=ReplaceUnhealthy",
    );
    let after = wait_for_group(&w, "sm", 1);
    assert!(!after.contains_key(&stopped));
    assert_eq!(instance_state(&w.moto, &stopped), "terminated");
}

// ---- Security groups for pods: the VPC resource controller ----

/// A security group in the VPC of `subnet`.
fn security_group(p: u16, subnet: &str, name: &str) -> String {
    let r = ec2(p, &format!("Action=DescribeSubnets&SubnetId.1={subnet}"));
    let vpc = xml(&r.body, "vpcId").expect("vpcId");
    let r = ec2(
        p,
        &format!("Action=CreateSecurityGroup&GroupName={name}&GroupDescription={name}&VpcId={vpc}"),
    );
    xml(&r.body, "groupId").expect("groupId")
}

/// A pod in `default` with labels, a service account and a node selector.
fn create_labelled_pod(kube: &FakeKube, name: &str, labels: Value, account: &str, selector: Value) {
    kube_send(
        kube,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"serviceAccountName": account, "nodeSelector": selector,
                "containers": [{"name": "c", "image": "nginx"}]}}),
    );
}

fn pod_named(kube: &FakeKube, name: &str) -> Value {
    let r = kube.call("GET", &format!("/api/v1/namespaces/default/pods/{name}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// `ENABLE_POD_ENI=true` with custom networking, one m5.large and one t3.medium node in
/// us-east-1a: the m5.large gets a trunk in the ENIConfig's subnet with its groups, its
/// label and 9 branch interfaces, and ipamd leaves it the slot; pods selected by a policy
/// (by their labels, or their service account's) get branch interfaces with the policy's
/// groups and the annotation, others addresses of ipamd's pool; a selected pod held to the
/// t3.medium stays unschedulable; a branch goes after its pod, once the cool-down is over.
#[test]
fn security_groups_for_pods_give_selected_pods_branch_enis() {
    let w = world(&["--data-plane", "--branch-cooldown-ms", "300"]);
    let p = w.proxy.port;
    let (a, _b, pa, _pb) = vpc_with_pod_subnets(p);
    let eni_sg = security_group(p, &pa, "eniconfig");
    let web_sg = security_group(p, &pa, "web");
    let api_sg = security_group(p, &pa, "api");
    set_cni_env(
        &w.kube,
        &[
            ("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true"),
            ("ENI_CONFIG_LABEL_DEF", "topology.kubernetes.io/zone"),
            ("ENABLE_POD_ENI", "true"),
        ],
    );
    kube_send(
        &w.kube,
        "POST",
        "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs",
        "application/json",
        &json!({"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
            "metadata": {"name": "us-east-1a"}, "spec": {"subnet": pa, "securityGroups": [eni_sg]}}),
    );
    let policy = |name: &str, spec: Value| {
        kube_send(
            &w.kube,
            "POST",
            "/apis/vpcresources.k8s.aws/v1beta1/namespaces/default/securitygrouppolicies",
            "application/json",
            &json!({"apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
                "metadata": {"name": name}, "spec": spec}),
        );
    };
    policy(
        "web",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "securityGroups": {"groupIds": [web_sg]}}),
    );
    policy(
        "api",
        json!({"serviceAccountSelector": {"matchLabels": {"team": "api"}}, "securityGroups": {"groupIds": [api_sg]}}),
    );
    kube_send(
        &w.kube,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "api", "labels": {"team": "api"}}}),
    );
    create_cluster(p, "c1", &a);
    for (ng, t) in [("big", "m5.large"), ("small", "t3.medium")] {
        create_nodegroup(
            p,
            "c1",
            json!({"nodegroupName": ng, "subnets": [a], "instanceTypes": [t],
                   "scalingConfig": {"minSize": 1, "maxSize": 1, "desiredSize": 1}}),
        );
    }
    wait_for_fleet(&w, "big", 1);
    wait_for_fleet(&w, "small", 1);
    let big = wait_for("the m5.large node advertises its branch interfaces", || {
        nodes_of(&w.kube, "big").into_iter().find(|n| {
            ready(n).0 == "True" && n["status"]["allocatable"]["vpc.amazonaws.com/pod-eni"] == "9"
        })
    });
    assert_eq!(big["status"]["capacity"]["vpc.amazonaws.com/pod-eni"], "9");
    assert_eq!(
        big["metadata"]["labels"]["vpc.amazonaws.com/has-trunk-attached"],
        "true"
    );
    let big_name = big["metadata"]["name"].as_str().expect("name").to_string();
    let inst = instance_of(&big);
    let attached = enis(&w.moto, "attachment.instance-id", &inst);
    assert_eq!(
        attached.len(),
        3,
        "the primary, ipamd's one and the trunk: {attached:?}"
    );
    let trunk = attached
        .iter()
        .find(|e| e.description == "aws-k8s-trunk-eni")
        .expect("a trunk");
    assert_eq!(
        (trunk.subnet.as_str(), trunk.groups.clone()),
        (pa.as_str(), vec![eni_sg.clone()])
    );
    assert!(
        trunk.secondaries.is_empty(),
        "ipamd gives pods nothing of the trunk"
    );
    let pool: Vec<&EniView> = attached
        .iter()
        .filter(|e| e.device_index != Some(0) && e.description.starts_with("aws-K8S-"))
        .collect();
    assert_eq!(pool.len(), 1, "{attached:?}");
    let trunk_tags = tags(&w.moto, &trunk.id);
    assert_eq!(
        trunk_tags.get("eks:eni:owner").map(String::as_str),
        Some("eks-vpc-resource-controller")
    );
    assert_eq!(
        trunk_tags.get("node.k8s.amazonaws.com/instance_id"),
        Some(&inst)
    );
    let small = nodes_of(&w.kube, "small").remove(0);
    assert!(small["metadata"]["labels"]["vpc.amazonaws.com/has-trunk-attached"].is_null());
    assert!(small["status"]["allocatable"]["vpc.amazonaws.com/pod-eni"].is_null());
    let small_name = small["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();

    let on = |node: &str| json!({"kubernetes.io/hostname": node});
    create_labelled_pod(&w.kube, "web", json!({"app": "web"}), "default", json!({}));
    create_labelled_pod(&w.kube, "api", json!({"app": "api"}), "api", json!({}));
    create_labelled_pod(
        &w.kube,
        "other",
        json!({"app": "other"}),
        "default",
        on(&big_name),
    );
    create_labelled_pod(
        &w.kube,
        "stuck",
        json!({"app": "web"}),
        "default",
        on(&small_name),
    );
    let running = |name: &str| {
        wait_for(&format!("{name} Running with an address"), || {
            let pod = pod_named(&w.kube, name);
            (pod["status"]["phase"] == "Running" && pod_ip(&pod).is_some()).then_some(pod)
        })
    };
    for (name, group) in [("web", &web_sg), ("api", &api_sg)] {
        let pod = running(name);
        assert_eq!(
            pod["spec"]["nodeName"],
            big_name.as_str(),
            "only the m5.large has branches"
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["limits"]["vpc.amazonaws.com/pod-eni"],
            "1"
        );
        let annotation: Value = serde_json::from_str(
            pod["metadata"]["annotations"]["vpc.amazonaws.com/pod-eni"]
                .as_str()
                .expect("the pod-eni annotation"),
        )
        .expect("JSON");
        let branch = &annotation[0];
        let ip = pod_ip(&pod).expect("ip");
        assert_eq!(branch["privateIp"], ip.as_str());
        assert_eq!(branch["subnetCidr"], "10.0.64.0/24");
        assert!(
            branch["vlanId"]
                .as_u64()
                .is_some_and(|v| (1..=2).contains(&v)),
            "{branch}"
        );
        let id = branch["eniId"].as_str().expect("eniId");
        let eni = enis(&w.moto, "network-interface-id", id).remove(0);
        assert_eq!(eni.description, "aws-k8s-branch-eni");
        assert_eq!(
            (eni.subnet.as_str(), eni.groups.clone()),
            (pa.as_str(), vec![group.clone()])
        );
        assert_eq!(
            (eni.status.as_str(), eni.device_index),
            ("available", None),
            "not attached"
        );
        assert_eq!(eni.address, ip);
        assert_eq!(
            tags(&w.moto, id).get("vpcresources.k8s.aws/trunk-eni-id"),
            Some(&trunk.id)
        );
    }
    let other = running("other");
    let ip = pod_ip(&other).expect("ip");
    assert!(
        pool[0].secondaries.contains(&ip)
            || enis(&w.moto, "attachment.instance-id", &inst)
                .iter()
                .any(|e| e.description.starts_with("aws-K8S-") && e.secondaries.contains(&ip)),
        "{ip} is an address of ipamd's pool"
    );
    assert!(other["metadata"]["annotations"]["vpc.amazonaws.com/pod-eni"].is_null());
    let stuck = wait_for(
        "the selected pod held to the t3.medium unschedulable",
        || {
            let pod = pod_named(&w.kube, "stuck");
            (pod["status"]["conditions"][0]["reason"] == "Unschedulable").then_some(pod)
        },
    );
    assert!(
        stuck["status"]["conditions"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Insufficient vpc.amazonaws.com/pod-eni")),
        "{stuck}"
    );
    assert!(pod_ip(&stuck).is_none());

    // The web pod goes: its branch goes after the cool-down.
    let web = pod_named(&w.kube, "web");
    let annotation: Value = serde_json::from_str(
        web["metadata"]["annotations"]["vpc.amazonaws.com/pod-eni"]
            .as_str()
            .expect("annotation"),
    )
    .expect("JSON");
    let id = annotation[0]["eniId"].as_str().expect("eniId").to_string();
    let r = request(
        w.kube.port,
        "DELETE",
        "/api/v1/namespaces/default/pods/web",
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("the web pod's branch deleted", || {
        enis(&w.moto, "network-interface-id", &id)
            .is_empty()
            .then_some(())
    });
}

/// A role in moto with these AWS managed policies.
fn iam_role(p: u16, name: &str, service: &str, policies: &[&str]) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": service}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
    let r = ok(query(
        p,
        "iam",
        &format!(
            "Action=CreateRole&RoleName={name}&AssumeRolePolicyDocument={}",
            enc(&trust.to_string())
        ),
    ));
    for policy in policies {
        ok(query(
            p,
            "iam",
            &format!(
                "Action=AttachRolePolicy&RoleName={name}&PolicyArn={}",
                enc(&format!("arn:aws:iam::aws:policy/{policy}"))
            ),
        ));
    }
    xml(&r.body, "Arn").expect("role ARN")
}

/// The env of the `aws-node` container of the aws-node pod on `node`, if one runs there.
fn aws_node_env(kube: &FakeKube, node: &str) -> Option<Vec<String>> {
    pods_on(kube, node)
        .into_iter()
        .find(|p| {
            p["metadata"]["namespace"] == "kube-system"
                && p["metadata"]["labels"]["k8s-app"] == "aws-node"
        })
        .map(|p| {
            p["spec"]["containers"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["name"] == "aws-node"))
                .and_then(|c| c["env"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
}

/// The CNI stand-in needs AmazonEKS_CNI_Policy as the real one does: on a node whose role
/// lacks it (and no role of the CNI's own) it assigns no address, the pod waits with the
/// CNI's "failed to assign an IP address to container". A Pod Identity association for
/// aws-node, with the agent add-on, makes EKS restart aws-node (the DaemonSet rolls, its
/// status says so), the new pod is created with the Pod Identity env, and the CNI, acting as
/// the association's role, gives the pod its address.
#[test]
fn the_cni_needs_its_policy_and_gets_it_from_a_pod_identity_association() {
    let w = world(&["--data-plane"]);
    let p = w.proxy.port;
    w.proxy
        .config(json!({"addon_create_ms": 0, "addon_update_ms": 0}));
    let (a, _b) = subnets(p);
    let node_role = iam_role(
        p,
        "node",
        "ec2.amazonaws.com",
        &["AmazonEKSWorkerNodePolicy"],
    );
    let cni_role = iam_role(
        p,
        "cni",
        "pods.eks.amazonaws.com",
        &["AmazonEKS_CNI_Policy"],
    );
    ok(eks(
        p,
        "POST",
        "/clusters",
        Some(json!({"name": "c1", "version": "1.30",
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "resourcesVpcConfig": {"subnetIds": [a]}})),
    ));
    ok(eks(
        p,
        "POST",
        "/clusters/c1/addons",
        Some(json!({"addonName": "eks-pod-identity-agent"})),
    ));
    ok(eks(
        p,
        "POST",
        "/clusters/c1/addons",
        Some(json!({"addonName": "vpc-cni", "resolveConflicts": "OVERWRITE"})),
    ));
    ok(eks(
        p,
        "POST",
        "/clusters/c1/node-groups",
        Some(json!({"nodegroupName": "ng",
        "nodeRole": node_role, "subnets": [a], "instanceTypes": ["m5.large"],
        "scalingConfig": {"minSize": 1, "maxSize": 1, "desiredSize": 1}})),
    ));
    let (ids, nodes) = wait_for_fleet(&w, "ng", 1);
    let inst = ids.iter().next().cloned().expect("instance");
    let node = nodes[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let env = wait_for("aws-node on the node", || aws_node_env(&w.kube, &node));
    assert!(
        !env.iter()
            .any(|e| e == "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        "{env:?}"
    );
    create_pod(&w.kube, "p1", json!({}));
    // The node role has no CNI policy: no address, ever, and the CNI's error on the pod.
    let event = wait_for("the CNI's error for p1", || {
        let r = w.kube.call("GET", "/api/v1/namespaces/default/events");
        r.json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find(|e| {
                e["involvedObject"]["name"] == "p1" && e["reason"] == "FailedCreatePodSandBox"
            })
    });
    assert!(
        event["message"]
            .as_str()
            .unwrap_or_default()
            .contains("failed to assign an IP address to container"),
        "{event}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let p1 = pods_on(&w.kube, &node)
        .into_iter()
        .find(|x| x["metadata"]["name"] == "p1")
        .expect("p1 bound");
    assert_eq!(pod_ip(&p1), None, "{p1}");
    assert_eq!(
        p1["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    let primary = enis(&w.moto, "attachment.instance-id", &inst)
        .into_iter()
        .find(|e| e.device_index == Some(0))
        .expect("primary");
    assert!(
        primary.secondaries.is_empty(),
        "no address assigned: {primary:?}"
    );

    // The CNI's own role through Pod Identity: EKS restarts aws-node, the new pod acts as
    // the association's role, and p1 gets its address.
    let ds_path = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node";
    let generation = w.kube.call("GET", ds_path).json()["metadata"]["generation"].clone();
    ok(eks(
        p,
        "POST",
        "/clusters/c1/addons/vpc-cni/update",
        Some(json!({
        "podIdentityAssociations": [{"serviceAccount": "aws-node", "roleArn": cni_role}]})),
    ));
    let env = wait_for("aws-node restarted with Pod Identity", || {
        aws_node_env(&w.kube, &node)
            .filter(|e| e.iter().any(|n| n == "AWS_CONTAINER_CREDENTIALS_FULL_URI"))
    });
    assert!(
        env.iter()
            .any(|n| n == "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        "{env:?}"
    );
    let ds = wait_for("the rollout reported", || {
        let ds = w.kube.call("GET", ds_path).json();
        let st = &ds["status"];
        (st["observedGeneration"] == ds["metadata"]["generation"]
            && st["updatedNumberScheduled"] == st["desiredNumberScheduled"]
            && st["numberAvailable"] == st["desiredNumberScheduled"])
            .then_some(ds)
    });
    assert_ne!(
        ds["metadata"]["generation"], generation,
        "the template changed"
    );
    let ip = wait_for("p1's address", || {
        pods_on(&w.kube, &node)
            .into_iter()
            .find(|x| x["metadata"]["name"] == "p1")
            .and_then(|x| pod_ip(&x))
    });
    assert!(ip.starts_with("10.0.1."), "{ip}");
}
