//! Option `eks_cluster_fields`: real moto_server behind the real proxy. The
//! VPCs and subnets are made in moto directly (not through the proxy) so the
//! proxy's stats hold only the EKS calls under test, and in eu-west-1 so that
//! an EC2 call in the wrong region would not find the subnet.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const REGION: &str = "eu-west-1";
const DESCRIPTION: &str = "EKS created security group applied to ENI that is attached to EKS \
     Control Plane master nodes, as well as any managed workloads.";

fn auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/{REGION}/{service}/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=0000"
    )
}

/// An EC2 Query call in `REGION` (`params` already form-encoded).
fn ec2(port: u16, params: &str) -> Resp {
    request(
        port,
        "POST",
        "/",
        &[
            ("Authorization", &auth("ec2")),
            ("X-Amz-Date", "20260101T000000Z"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ],
        format!("{params}&Version=2016-11-15").as_bytes(),
    )
}

/// An EKS REST-JSON call in `REGION`.
fn eks_call(port: u16, method: &str, path: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    request(
        port,
        method,
        path,
        &[
            ("Authorization", &auth("eks")),
            ("X-Amz-Date", "20260101T000000Z"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// A VPC with one subnet, made in moto directly: (vpc id, subnet id).
fn vpc_and_subnet(moto: &Moto, cidr: &str, subnet_cidr: &str) -> (String, String) {
    let r = ec2(
        moto.port,
        &format!("Action=CreateVpc&CidrBlock={}", enc(cidr)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let vpc = xml(&r.body, "vpcId").expect("vpcId");
    let r = ec2(
        moto.port,
        &format!(
            "Action=CreateSubnet&VpcId={vpc}&CidrBlock={}",
            enc(subnet_cidr)
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    (vpc, xml(&r.body, "subnetId").expect("subnetId"))
}

fn create_body(name: &str, subnet: &str) -> Value {
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "resourcesVpcConfig": {"subnetIds": [subnet]}
    })
}

fn vpc_config(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["cluster"]["resourcesVpcConfig"].clone()
}

/// The security groups moto has with the EKS cluster tag for `cluster`,
/// asked directly: one `<item>…</item>` text each.
fn moto_cluster_groups(moto: &Moto, cluster: &str) -> Vec<String> {
    let r = ec2(
        moto.port,
        &format!(
            "Action=DescribeSecurityGroups&Filter.1.Name={}&Filter.1.Value.1={}",
            enc("tag:aws:eks:cluster-name"),
            enc(cluster)
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .split("<item><groupId>")
        .skip(1)
        .map(|s| format!("<groupId>{s}"))
        .collect()
}

/// Whether moto knows the group id (asked directly).
fn moto_has_group(moto: &Moto, group_id: &str) -> bool {
    let r = ec2(
        moto.port,
        &format!("Action=DescribeSecurityGroups&GroupId.1={group_id}"),
    );
    match r.status {
        200 => r.body.contains(group_id),
        400 if xml(&r.body, "Code").as_deref() == Some("InvalidGroup.NotFound") => false,
        s => panic!("DescribeSecurityGroups {group_id}: {s} {}", r.body),
    }
}

fn operations(stats: &Value) -> BTreeSet<String> {
    stats["by_operation"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn cluster_answers_get_a_real_security_group_and_vpc() {
    let (moto, proxy) = moto_and_proxy(&["ec2", "eks"], &["--eks-cluster-fields"]);
    let p = proxy.port;
    // The first subnet decides the VPC; the second is in another VPC.
    let (vpc, subnet) = vpc_and_subnet(&moto, "10.60.0.0/16", "10.60.1.0/24");
    let (_other_vpc, other_subnet) = vpc_and_subnet(&moto, "10.61.0.0/16", "10.61.1.0/24");

    let mut body = create_body("sgc", &subnet);
    body["resourcesVpcConfig"]["subnetIds"] = json!([subnet, other_subnet]);
    let created = vpc_config(&eks_call(p, "POST", "/clusters", Some(body)));
    let sg = created["clusterSecurityGroupId"]
        .as_str()
        .expect("clusterSecurityGroupId in CreateCluster")
        .to_string();
    assert!(sg.starts_with("sg-"), "{created}");
    assert_eq!(created["vpcId"], vpc.as_str(), "{created}");
    assert_eq!(created["subnetIds"], json!([subnet, other_subnet]));

    // Describes give the same group, and no new one is made.
    for _ in 0..2 {
        let described = vpc_config(&eks_call(p, "GET", "/clusters/sgc", None));
        assert_eq!(described["clusterSecurityGroupId"], sg.as_str());
        assert_eq!(described["vpcId"], vpc.as_str());
    }
    // moto itself still lacks the fields: the proxy adds them.
    let direct = vpc_config(&eks_call(moto.port, "GET", "/clusters/sgc", None));
    assert!(direct.get("clusterSecurityGroupId").is_none(), "{direct}");

    // The group is real, once, in the subnet's VPC, named and described as EKS does.
    let groups = moto_cluster_groups(&moto, "sgc");
    assert_eq!(groups.len(), 1, "{groups:?}");
    let g = &groups[0];
    assert_eq!(xml(g, "groupId").as_deref(), Some(sg.as_str()), "{g}");
    assert_eq!(xml(g, "vpcId").as_deref(), Some(vpc.as_str()), "{g}");
    let name = xml(g, "groupName").expect("groupName");
    let suffix = name
        .strip_prefix("eks-cluster-sg-sgc-")
        .unwrap_or_else(|| panic!("group name {name}"));
    assert!(
        !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{name}"
    );
    assert_eq!(xml(g, "groupDescription").as_deref(), Some(DESCRIPTION));
    assert!(
        g.contains("<key>aws:eks:cluster-name</key><value>sgc</value>"),
        "{g}"
    );

    // DeleteCluster answers with the fields, then the group is gone.
    let deleted = vpc_config(&eks_call(p, "DELETE", "/clusters/sgc", None));
    assert_eq!(deleted["clusterSecurityGroupId"], sg.as_str());
    assert_eq!(deleted["vpcId"], vpc.as_str());
    assert!(!moto_has_group(&moto, &sg), "{sg} survived DeleteCluster");
    assert!(moto_cluster_groups(&moto, "sgc").is_empty());

    // A new cluster of the same name gets a new group.
    let again = vpc_config(&eks_call(
        p,
        "POST",
        "/clusters",
        Some(create_body("sgc", &subnet)),
    ));
    let sg2 = again["clusterSecurityGroupId"]
        .as_str()
        .expect("clusterSecurityGroupId")
        .to_string();
    assert_ne!(sg2, sg);
    assert!(moto_has_group(&moto, &sg2));

    // Only the client's requests are counted.
    let s = proxy.stats();
    assert_eq!(s["total"], 5, "{s}");
    assert_eq!(s["mutating"], 3, "{s}");
    assert_eq!(s["by_operation"]["CreateCluster"], 2, "{s}");
    assert_eq!(s["by_operation"]["DescribeCluster"], 2, "{s}");
    assert_eq!(s["by_operation"]["DeleteCluster"], 1, "{s}");
    assert_eq!(
        operations(&s),
        ["CreateCluster", "DeleteCluster", "DescribeCluster"]
            .map(String::from)
            .into(),
        "{s}"
    );

    // Reset forgets the groups along with moto's state.
    let r = request(p, "POST", "/__proxy/reset", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let (vpc3, subnet3) = vpc_and_subnet(&moto, "10.62.0.0/16", "10.62.1.0/24");
    let fresh = vpc_config(&eks_call(
        p,
        "POST",
        "/clusters",
        Some(create_body("sgc", &subnet3)),
    ));
    assert_eq!(fresh["vpcId"], vpc3.as_str());
    let sg3 = fresh["clusterSecurityGroupId"].as_str().expect("group id");
    assert!(moto_has_group(&moto, sg3));
}

#[test]
fn off_by_default_and_switchable_at_run_time() {
    let (moto, proxy) = moto_and_proxy(&["ec2", "eks"], &[]);
    let p = proxy.port;
    let c = request(p, "GET", "/__proxy/config", &[], b"").json();
    assert_eq!(c["eks_cluster_fields"], false);
    let (vpc, subnet) = vpc_and_subnet(&moto, "10.70.0.0/16", "10.70.1.0/24");

    let created = eks_call(p, "POST", "/clusters", Some(create_body("plain", &subnet)));
    let cfg = vpc_config(&created);
    assert!(cfg.get("clusterSecurityGroupId").is_none(), "{cfg}");
    assert!(cfg.get("vpcId").is_none(), "{cfg}");
    // Byte for byte moto's answer.
    let through = eks_call(p, "GET", "/clusters/plain", None);
    let direct = eks_call(moto.port, "GET", "/clusters/plain", None);
    assert_eq!(through.status, 200);
    assert_eq!(through.body, direct.body);
    assert!(moto_cluster_groups(&moto, "plain").is_empty());

    // Switched on through the control API, for a cluster made without it.
    let c = proxy.config(json!({"eks_cluster_fields": true}));
    assert_eq!(c["eks_cluster_fields"], true);
    let cfg = vpc_config(&eks_call(p, "GET", "/clusters/plain", None));
    assert_eq!(cfg["vpcId"], vpc.as_str());
    let sg = cfg["clusterSecurityGroupId"].as_str().expect("group id");
    assert_eq!(moto_cluster_groups(&moto, "plain").len(), 1);

    // A bad value is rejected; null switches it off again.
    let r = request(
        p,
        "POST",
        "/__proxy/config",
        &[],
        br#"{"eks_cluster_fields": "yes"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let c = proxy.config(json!({"eks_cluster_fields": null}));
    assert_eq!(c["eks_cluster_fields"], false);
    let through = eks_call(p, "GET", "/clusters/plain", None);
    let direct = eks_call(moto.port, "GET", "/clusters/plain", None);
    assert_eq!(through.body, direct.body);
    // The group the proxy made still goes with the cluster.
    assert_eq!(eks_call(p, "DELETE", "/clusters/plain", None).status, 200);
    assert!(!moto_has_group(&moto, sg));

    // A subnet moto does not know: the answer stays as moto gave it.
    proxy.config(json!({"eks_cluster_fields": true}));
    let r = eks_call(
        p,
        "POST",
        "/clusters",
        Some(create_body("nosubnet", "subnet-nope")),
    );
    let cfg = vpc_config(&r);
    assert!(cfg.get("clusterSecurityGroupId").is_none(), "{cfg}");
    assert!(cfg.get("vpcId").is_none(), "{cfg}");
}

/// Waits briefly for the child to be reaped; its terminating signal.
fn exit_signal(child: &mut Proc) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.0.try_wait() {
            return status.signal();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn internal_calls_do_not_count_for_the_kill_hook() {
    let (moto, proxy) = moto_and_proxy(&["ec2", "eks"], &["--eks-cluster-fields=true"]);
    let p = proxy.port;
    let (_vpc, subnet) = vpc_and_subnet(&moto, "10.80.0.0/16", "10.80.1.0/24");
    let mut victim = Proc(
        Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep"),
    );
    proxy.config(json!({"kill_after_mutating": 2, "kill_pid": victim.0.id()}));
    // CreateCluster makes a security group (a mutating EC2 call of the
    // proxy's own) and DeleteCluster deletes it: neither may count.
    let r = eks_call(p, "POST", "/clusters", Some(create_body("kc", &subnet)));
    assert!(vpc_config(&r)["clusterSecurityGroupId"].is_string());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        matches!(victim.0.try_wait(), Ok(None)),
        "the proxy's own CreateSecurityGroup fired the kill hook"
    );
    assert_eq!(eks_call(p, "DELETE", "/clusters/kc", None).status, 200);
    assert_eq!(exit_signal(&mut victim), Some(libc::SIGKILL));
    let s = proxy.stats();
    assert_eq!(s["total"], 2, "{s}");
    assert_eq!(s["kill"]["after_seq"], 2, "{s}");
    assert_eq!(s["kill"]["op"], "DeleteCluster", "{s}");
}

#[test]
fn concurrent_answers_share_one_group() {
    let (moto, proxy) = moto_and_proxy(&["ec2", "eks"], &[]);
    let p = proxy.port;
    let (vpc, subnet) = vpc_and_subnet(&moto, "10.90.0.0/16", "10.90.1.0/24");
    // Made with the option off, so that the describes below all miss the
    // cache at the same time.
    assert_eq!(
        eks_call(p, "POST", "/clusters", Some(create_body("race", &subnet))).status,
        200
    );
    proxy.config(json!({"eks_cluster_fields": true}));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || vpc_config(&eks_call(p, "GET", "/clusters/race", None)))
        })
        .collect();
    let ids: BTreeSet<String> = threads
        .into_iter()
        .map(|t| {
            let cfg = t.join().expect("describe thread");
            assert_eq!(cfg["vpcId"], vpc.as_str(), "{cfg}");
            cfg["clusterSecurityGroupId"]
                .as_str()
                .expect("group id")
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(moto_cluster_groups(&moto, "race").len(), 1);
    assert_eq!(proxy.stats()["by_operation"]["DescribeCluster"], 8);
}
