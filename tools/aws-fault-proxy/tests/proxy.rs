//! End-to-end tests: real moto_server behind the real proxy binary, driven
//! with raw HTTP. Windows are a few hundred milliseconds to keep runs short.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const WINDOW: Duration = Duration::from_millis(400);
const MARGIN: Duration = Duration::from_millis(150);

fn create_vpc(port: u16, cidr: &str) -> String {
    let r = query(
        port,
        "ec2",
        &format!("Action=CreateVpc&CidrBlock={}", enc(cidr)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    xml(&r.body, "vpcId").expect("vpcId in CreateVpc answer")
}

/// Number of VPCs moto itself has with this CIDR (asked directly, bypassing
/// the proxy), to prove whether a request reached moto.
fn moto_vpcs_with_cidr(moto: &Moto, cidr: &str) -> usize {
    let r = query(
        moto.port,
        "ec2",
        &format!(
            "Action=DescribeVpcs&Filter.1.Name=cidr&Filter.1.Value.1={}",
            enc(cidr)
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.matches("<vpcId>").count()
}

#[test]
fn forwards_method_path_query_headers_and_body_unchanged() {
    // A fake upstream that records the raw request it receives.
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_port = upstream.local_addr().expect("addr").port();
    let captured = std::thread::spawn(move || {
        let (mut s, _) = upstream.accept().expect("accept");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read until the 11-byte body after the blank line has arrived.
        loop {
            let n = s.read(&mut chunk).expect("read");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if n == 0
                || text
                    .split_once("\r\n\r\n")
                    .is_some_and(|(_, b)| b.len() >= 11)
            {
                break;
            }
        }
        s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Up: yes\r\nConnection: close\r\n\r\nok")
            .expect("write");
        String::from_utf8_lossy(&buf).into_owned()
    });
    let proxy = Proxy::start(&format!("http://127.0.0.1:{up_port}"), &[]);
    let r = request(
        proxy.port,
        "PUT",
        "/some/path?x=1&y=%2F",
        &[
            ("Host", "eks.us-west-2.amazonaws.com"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=A/20260101/us-west-2/eks/aws4_request, SignedHeaders=host, Signature=abc"),
            ("X-Amz-Date", "20260101T000000Z"),
        ],
        b"hello world",
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.body, "ok");
    assert_eq!(r.header("x-up"), Some("yes"));
    let raw = captured.join().expect("upstream thread");
    let lower = raw.to_ascii_lowercase();
    assert!(
        raw.starts_with("PUT /some/path?x=1&y=%2F HTTP/1.1\r\n"),
        "{raw}"
    );
    assert!(
        lower.contains("\r\nhost: eks.us-west-2.amazonaws.com\r\n"),
        "{raw}"
    );
    assert!(raw.contains("Signature=abc"), "{raw}");
    assert!(
        lower.contains("\r\nx-amz-date: 20260101t000000z\r\n"),
        "{raw}"
    );
    assert!(raw.ends_with("\r\n\r\nhello world"), "{raw}");
    let s = proxy.stats();
    assert_eq!(s["by_operation"]["Eks:PUT /some/path"], 1, "{s}");
}

#[test]
fn passes_through_and_counts_operations() {
    let (moto, proxy) = moto_and_proxy(&["ec2", "iam", "eks"], &[]);
    let p = proxy.port;
    let vpc = create_vpc(p, "10.10.0.0/16");
    let r = query(p, "ec2", &format!("Action=DescribeVpcs&VpcId.1={vpc}"));
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&vpc));
    let r = query(
        p,
        "ec2",
        &format!(
            "Action=CreateSubnet&VpcId={vpc}&CidrBlock={}",
            enc("10.10.1.0/24")
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = enc(r#"{"Version":"2012-10-17","Statement":[]}"#);
    let r = query(
        p,
        "iam",
        &format!("Action=CreateRole&RoleName=pt-role&AssumeRolePolicyDocument={doc}"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = query(p, "iam", "Action=GetRole&RoleName=pt-role");
    assert_eq!(r.status, 200);
    let r = eks(p, "GET", "/clusters", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["clusters"], json!([]));
    // moto's own API goes through but is not AWS traffic.
    let r = request(p, "GET", "/moto-api/data.json", &[], b"");
    assert_eq!(r.status, 200);
    // A moto error comes back as moto wrote it.
    let r = query(p, "ec2", "Action=DeleteSubnet&SubnetId=subnet-nope");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("InvalidSubnetID.NotFound"), "{}", r.body);
    assert_eq!(moto_vpcs_with_cidr(&moto, "10.10.0.0/16"), 1);

    let s = proxy.stats();
    assert_eq!(s["total"], 7, "{s}");
    assert_eq!(s["mutating"], 4, "{s}");
    for (op, n) in [
        ("CreateVpc", 1),
        ("DescribeVpcs", 1),
        ("CreateSubnet", 1),
        ("CreateRole", 1),
        ("GetRole", 1),
        ("ListClusters", 1),
        ("DeleteSubnet", 1),
    ] {
        assert_eq!(s["by_operation"][op], n, "{op}: {s}");
    }
    assert_eq!(s["max_in_flight"], 1);
    assert_eq!(s["round_trips"], 7, "sequential calls are one wave each");
    let reqs = s["requests"].as_array().expect("requests");
    assert_eq!(reqs[0]["op"], "CreateVpc");
    assert_eq!(reqs[0]["mutating"], true);
    assert_eq!(reqs[6]["status"], 400);
    assert!(reqs[0]["end_unix_nanos"].as_u64() >= reqs[0]["start_unix_nanos"].as_u64());

    let r = request(p, "POST", "/__proxy/reset-stats", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(proxy.stats()["total"], 0);
}

#[test]
fn latency_is_added_and_waves_are_counted() {
    let (_moto, proxy) = moto_and_proxy(&["ec2"], &["--latency-ms", "200"]);
    let p = proxy.port;
    let t = Instant::now();
    let r = query(p, "ec2", "Action=DescribeVpcs");
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    request(p, "POST", "/__proxy/reset-stats", &[], b"");
    // Three calls in parallel, then one after them: two waves.
    let threads: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || query(p, "ec2", "Action=DescribeVpcs").status))
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), 200);
    }
    assert_eq!(query(p, "ec2", "Action=DescribeSubnets").status, 200);
    let s = proxy.stats();
    assert_eq!(s["total"], 4, "{s}");
    assert_eq!(s["max_in_flight"], 3, "{s}");
    assert_eq!(s["round_trips"], 2, "{s}");
    assert_eq!(s["mutating"], 0);
}

#[test]
fn throttling_and_server_errors_have_aws_shapes() {
    let (moto, proxy) = moto_and_proxy(&["ec2"], &["--throttle-fraction", "1.0"]);
    let p = proxy.port;

    let r = query(
        p,
        "ec2",
        &format!("Action=CreateVpc&CidrBlock={}", enc("10.20.0.0/16")),
    );
    assert_eq!(r.status, 503);
    assert!(
        r.body.contains(
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code>\
             <Message>Request limit exceeded.</Message></Error></Errors><RequestID>"
        ),
        "{}",
        r.body
    );
    assert!(r.body.ends_with("</RequestID></Response>"), "{}", r.body);
    assert_eq!(
        moto_vpcs_with_cidr(&moto, "10.20.0.0/16"),
        0,
        "throttled call reached moto"
    );

    let r = query(p, "iam", "Action=GetRole&RoleName=x");
    assert_eq!(r.status, 400);
    assert!(
        r.body.starts_with(
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
             <Message>Rate exceeded</Message></Error><RequestId>"
        ),
        "{}",
        r.body
    );
    let r = query(p, "cloudformation", "Action=DescribeStacks");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("<Code>Throttling</Code>"));

    let r = eks(p, "GET", "/clusters", None);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("ThrottlingException"));
    assert_eq!(r.json(), json!({"message": "Rate exceeded"}));

    let s = proxy.stats();
    assert_eq!(s["requests"][0]["fault"], "throttle");

    // Server errors: 500 InternalError or 503 ServiceUnavailable.
    proxy.config(json!({"throttle_fraction": 0, "server_error_fraction": 1.0}));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let r = query(p, "ec2", "Action=DescribeVpcs");
        let code = xml(&r.body, "Code").expect("error code");
        seen.insert((r.status, code));
        let r = eks(p, "GET", "/clusters", None);
        assert!(r.status == 500 || r.status == 503, "{}", r.status);
    }
    for (status, code) in &seen {
        assert!(
            (*status == 500 && code == "InternalError")
                || (*status == 503 && code == "ServiceUnavailable"),
            "{status} {code}"
        );
    }

    // A seeded fraction is partial and reproducible.
    let pattern = |proxy: &Proxy| {
        proxy.config(
            json!({"server_error_fraction": 0, "throttle_fraction": 0.5, "throttle_seed": 7}),
        );
        (0..30)
            .map(|_| query(p, "ec2", "Action=DescribeVpcs").status == 503)
            .collect::<Vec<bool>>()
    };
    let a = pattern(&proxy);
    let b = pattern(&proxy);
    assert_eq!(a, b, "same seed must throttle the same requests");
    let n = a.iter().filter(|t| **t).count();
    assert!((5..=25).contains(&n), "{n} of 30 throttled at fraction 0.5");
}

#[test]
fn cluster_is_creating_then_active_and_deleting_then_gone() {
    let (moto, proxy) = moto_and_proxy(&["eks"], &[]);
    let p = proxy.port;
    let ms = WINDOW.as_millis() as u64;
    proxy.config(json!({"cluster_create_ms": ms, "cluster_delete_ms": ms}));

    let body = json!({
        "name": "tc1",
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "resourcesVpcConfig": {"subnetIds": ["subnet-1", "subnet-2"]}
    });
    let r = eks(p, "POST", "/clusters", Some(body.clone()));
    assert_eq!(r.status, 200, "{}", r.body);
    // Windows start when moto's answer reaches the proxy, so timing from the
    // answer's arrival here is conservative.
    let created = Instant::now();
    assert_eq!(r.json()["cluster"]["status"], "CREATING");
    let r = eks(p, "GET", "/clusters/tc1", None);
    assert_eq!(r.json()["cluster"]["status"], "CREATING");
    assert_eq!(r.json()["cluster"]["name"], "tc1");
    assert!(
        created.elapsed() < WINDOW,
        "machine too slow for the window"
    );
    // moto itself already says ACTIVE: the proxy is what delays it.
    let direct = eks(moto.port, "GET", "/clusters/tc1", None);
    assert_eq!(direct.json()["cluster"]["status"], "ACTIVE");

    sleep_until(created + WINDOW + MARGIN);
    let r = eks(p, "GET", "/clusters/tc1", None);
    assert_eq!(r.json()["cluster"]["status"], "ACTIVE");

    let r = eks(p, "DELETE", "/clusters/tc1", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let deleted = Instant::now();
    assert_eq!(r.json()["cluster"]["status"], "DELETING");
    // The name stays taken while the cluster is DELETING, as on EKS (answered by the proxy
    // alone, and first, so that it lands inside the window).
    let again = eks(p, "POST", "/clusters", Some(body.clone()));
    assert!(
        deleted.elapsed() < WINDOW,
        "machine too slow for the window"
    );
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(
        again.header("x-amzn-ErrorType"),
        Some("ResourceInUseException")
    );
    let r = eks(p, "GET", "/clusters/tc1", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["cluster"]["status"], "DELETING");
    assert_eq!(
        r.json()["cluster"]["arn"],
        "arn:aws:eks:us-east-1:123456789012:cluster/tc1"
    );
    assert!(
        deleted.elapsed() < WINDOW,
        "machine too slow for the window"
    );
    assert_eq!(eks(moto.port, "GET", "/clusters/tc1", None).status, 404);

    sleep_until(deleted + WINDOW + MARGIN);
    let r = eks(p, "GET", "/clusters/tc1", None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("ResourceNotFoundException")
    );

    let s = proxy.stats();
    assert_eq!(s["by_operation"]["DescribeCluster"], 4, "{s}");
    assert_eq!(s["mutating"], 3, "{s}");
}

#[test]
fn nodegroup_transitions_and_cluster_delete_waits_for_them() {
    let (_moto, proxy) = moto_and_proxy(&["eks", "ec2"], &[]);
    let p = proxy.port;
    let ms = WINDOW.as_millis() as u64;
    let body = json!({
        "name": "ngc",
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "resourcesVpcConfig": {"subnetIds": ["subnet-1"]}
    });
    assert_eq!(eks(p, "POST", "/clusters", Some(body)).status, 200);
    proxy.config(json!({"nodegroup_create_ms": ms, "nodegroup_delete_ms": ms}));

    let ng = json!({
        "nodegroupName": "ng1",
        "nodeRole": "arn:aws:iam::123456789012:role/node",
        "subnets": ["subnet-1"]
    });
    let r = eks(p, "POST", "/clusters/ngc/node-groups", Some(ng));
    assert_eq!(r.status, 200, "{}", r.body);
    let created = Instant::now();
    assert_eq!(r.json()["nodegroup"]["status"], "CREATING");
    let r = eks(p, "GET", "/clusters/ngc/node-groups/ng1", None);
    assert_eq!(r.json()["nodegroup"]["status"], "CREATING");
    assert!(
        created.elapsed() < WINDOW,
        "machine too slow for the window"
    );
    sleep_until(created + WINDOW + MARGIN);
    let r = eks(p, "GET", "/clusters/ngc/node-groups/ng1", None);
    assert_eq!(r.json()["nodegroup"]["status"], "ACTIVE");

    let r = eks(p, "DELETE", "/clusters/ngc/node-groups/ng1", None);
    let deleted = Instant::now();
    assert_eq!(r.json()["nodegroup"]["status"], "DELETING");
    let r = eks(p, "GET", "/clusters/ngc/node-groups/ng1", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["nodegroup"]["status"], "DELETING");
    // EKS refuses to delete a cluster while a nodegroup is still deleting.
    let r = eks(p, "DELETE", "/clusters/ngc", None);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("ResourceInUseException"));
    assert!(
        deleted.elapsed() < WINDOW,
        "machine too slow for the window"
    );

    sleep_until(deleted + WINDOW + MARGIN);
    let r = eks(p, "GET", "/clusters/ngc/node-groups/ng1", None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(eks(p, "DELETE", "/clusters/ngc", None).status, 200);
}

#[test]
fn stack_is_in_progress_then_complete_and_deleted_by_name_is_validation_error() {
    let (_moto, proxy) = moto_and_proxy(
        &["cloudformation", "sns"],
        &["--stack-create-ms", "400", "--stack-delete-ms", "400"],
    );
    let p = proxy.port;
    let template = enc(r#"{"Resources":{"T":{"Type":"AWS::SNS::Topic"}}}"#);
    let r = query(
        p,
        "cloudformation",
        &format!("Action=CreateStack&StackName=net1&TemplateBody={template}"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let created = Instant::now();
    let stack_id = xml(&r.body, "StackId").expect("StackId");

    let r = query(p, "cloudformation", "Action=DescribeStacks&StackName=net1");
    assert_eq!(
        xml(&r.body, "StackStatus").as_deref(),
        Some("CREATE_IN_PROGRESS")
    );
    let r = query(p, "cloudformation", "Action=DescribeStacks");
    assert_eq!(
        xml(&r.body, "StackStatus").as_deref(),
        Some("CREATE_IN_PROGRESS")
    );
    let r = query(
        p,
        "cloudformation",
        &format!("Action=DescribeStacks&StackName={}", enc(&stack_id)),
    );
    assert_eq!(
        xml(&r.body, "StackStatus").as_deref(),
        Some("CREATE_IN_PROGRESS")
    );
    assert!(
        created.elapsed() < WINDOW,
        "machine too slow for the window"
    );
    sleep_until(created + WINDOW + MARGIN);
    let r = query(p, "cloudformation", "Action=DescribeStacks&StackName=net1");
    assert_eq!(
        xml(&r.body, "StackStatus").as_deref(),
        Some("CREATE_COMPLETE")
    );

    let r = query(p, "cloudformation", "Action=DeleteStack&StackName=net1");
    assert_eq!(r.status, 200, "{}", r.body);
    let deleted = Instant::now();
    let r = query(p, "cloudformation", "Action=DescribeStacks&StackName=net1");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        xml(&r.body, "StackStatus").as_deref(),
        Some("DELETE_IN_PROGRESS")
    );
    assert_eq!(xml(&r.body, "StackName").as_deref(), Some("net1"));
    assert!(
        deleted.elapsed() < WINDOW,
        "machine too slow for the window"
    );
    sleep_until(deleted + WINDOW + MARGIN);

    // What AWS answers for a deleted stack described by name.
    let r = query(p, "cloudformation", "Action=DescribeStacks&StackName=net1");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(xml(&r.body, "Code").as_deref(), Some("ValidationError"));
    assert_eq!(
        xml(&r.body, "Message").as_deref(),
        Some("Stack with id net1 does not exist")
    );
    // By stack id AWS still shows it, as DELETE_COMPLETE.
    let r = query(
        p,
        "cloudformation",
        &format!("Action=DescribeStacks&StackName={}", enc(&stack_id)),
    );
    assert_eq!(
        xml(&r.body, "StackStatus").as_deref(),
        Some("DELETE_COMPLETE")
    );
}

#[test]
fn subnet_delete_fails_with_dependency_violation_n_times() {
    let (moto, proxy) = moto_and_proxy(&["ec2"], &["--dependency-violation-count", "2"]);
    let p = proxy.port;
    let vpc = create_vpc(p, "10.30.0.0/16");
    let r = query(
        p,
        "ec2",
        &format!(
            "Action=CreateSubnet&VpcId={vpc}&CidrBlock={}",
            enc("10.30.1.0/24")
        ),
    );
    let subnet = xml(&r.body, "subnetId").expect("subnetId");
    for _ in 0..2 {
        let r = query(p, "ec2", &format!("Action=DeleteSubnet&SubnetId={subnet}"));
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(xml(&r.body, "Code").as_deref(), Some("DependencyViolation"));
        assert_eq!(
            xml(&r.body, "Message"),
            Some(format!(
                "The subnet '{subnet}' has dependencies and cannot be deleted."
            ))
        );
    }
    // The failures never reached moto: the subnet is still there.
    let direct = query(
        moto.port,
        "ec2",
        &format!("Action=DescribeSubnets&SubnetId.1={subnet}"),
    );
    assert_eq!(direct.status, 200, "{}", direct.body);
    assert!(direct.body.contains(&subnet));
    let r = query(p, "ec2", &format!("Action=DeleteSubnet&SubnetId={subnet}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let s = proxy.stats();
    assert_eq!(s["by_operation"]["DeleteSubnet"], 3);
    assert_eq!(s["requests"][2]["fault"], "dependency_violation");
}

#[test]
fn new_role_cannot_be_assumed_until_propagated() {
    let (moto, proxy) = moto_and_proxy(&["iam", "eks"], &["--iam-propagation-ms", "400"]);
    let p = proxy.port;
    let doc = enc(r#"{"Version":"2012-10-17","Statement":[]}"#);
    let r = query(
        p,
        "iam",
        &format!(
            "Action=CreateRole&RoleName=eks-fresh&Path=%2Fnet%2F&AssumeRolePolicyDocument={doc}"
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let created = Instant::now();
    let arn = xml(&r.body, "Arn").expect("Arn");
    assert_eq!(arn, "arn:aws:iam::123456789012:role/net/eks-fresh");
    let body = json!({
        "name": "iamc",
        "roleArn": arn,
        "resourcesVpcConfig": {"subnetIds": ["subnet-1"]}
    });
    let r = eks(p, "POST", "/clusters", Some(body.clone()));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidParameterException")
    );
    assert_eq!(
        r.json()["message"],
        format!(
            "Role with arn: {arn}, could not be assumed because it does not exist or the \
             trusted entity is not correct"
        )
    );
    assert!(
        created.elapsed() < WINDOW,
        "machine too slow for the window"
    );
    // Rejected without reaching moto.
    assert_eq!(
        eks(moto.port, "GET", "/clusters", None).json()["clusters"],
        json!([])
    );
    // Another role is not affected.
    let other = json!({
        "name": "iamc-other",
        "roleArn": "arn:aws:iam::123456789012:role/old",
        "resourcesVpcConfig": {"subnetIds": ["subnet-1"]}
    });
    assert_eq!(eks(p, "POST", "/clusters", Some(other)).status, 200);

    sleep_until(created + WINDOW + MARGIN);
    let r = eks(p, "POST", "/clusters", Some(body));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn reject_op_refuses_one_eks_operation_for_good() {
    let (moto, proxy) = moto_and_proxy(&["eks"], &["--reject-op", "CreateCluster"]);
    let p = proxy.port;
    let body = json!({
        "name": "rejected",
        "roleArn": "arn:aws:iam::123456789012:role/r",
        "resourcesVpcConfig": {"subnetIds": ["subnet-1"]}
    });
    for _ in 0..2 {
        let r = eks(p, "POST", "/clusters", Some(body.clone()));
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("InvalidParameterException")
        );
    }
    // Never reached moto; other operations pass.
    assert_eq!(
        eks(moto.port, "GET", "/clusters", None).json()["clusters"],
        json!([])
    );
    assert_eq!(eks(p, "GET", "/clusters", None).status, 200);
}

fn spawn_sleeper() -> common::Proc {
    common::Proc(
        Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep"),
    )
}

/// Waits briefly for the child to be reaped and returns its terminating
/// signal (SIGKILL is delivered at once, but reaping is asynchronous).
fn exit_signal(child: &mut common::Proc) -> Option<i32> {
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
fn kill_hook_kills_client_after_kth_mutating_answer() {
    let (moto, proxy) = moto_and_proxy(&["ec2"], &[]);
    let p = proxy.port;
    let mut victim = spawn_sleeper();
    proxy.config(json!({"kill_after_mutating": 2, "kill_pid": victim.0.id()}));

    create_vpc(p, "10.40.0.0/16"); // mutating #1
    assert_eq!(query(p, "ec2", "Action=DescribeVpcs").status, 200);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        matches!(victim.0.try_wait(), Ok(None)),
        "killed before the 2nd mutating request"
    );
    assert!(!proxy.stats()["killed"].as_bool().unwrap_or(true));

    create_vpc(p, "10.41.0.0/16"); // mutating #2: kill fires before this answer
    assert_eq!(exit_signal(&mut victim), Some(libc::SIGKILL));
    // The resource exists in moto although the client never saw the answer.
    assert_eq!(moto_vpcs_with_cidr(&moto, "10.41.0.0/16"), 1);
    let s = proxy.stats();
    assert_eq!(s["killed"], true, "{s}");
    assert_eq!(s["kill"]["after_seq"], 3, "{s}");
    assert_eq!(s["kill"]["op"], "CreateVpc", "{s}");
    assert_eq!(s["kill"]["pid"], victim.0.id());

    // The hook fires once; later mutating requests pass normally.
    create_vpc(p, "10.42.0.0/16");
}

#[test]
fn kill_hook_with_an_operation_counts_only_that_operation() {
    let (moto, proxy) = moto_and_proxy(&["ec2"], &[]);
    let p = proxy.port;
    let mut victim = spawn_sleeper();
    proxy.config(
        json!({"kill_after_mutating": 1, "kill_op": "CreateSubnet", "kill_pid": victim.0.id()}),
    );

    // Other mutating operations do not count, however many.
    let vpc = create_vpc(p, "10.50.0.0/16");
    create_vpc(p, "10.51.0.0/16");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        matches!(victim.0.try_wait(), Ok(None)),
        "killed by CreateVpc"
    );

    let r = query(
        p,
        "ec2",
        &format!(
            "Action=CreateSubnet&VpcId={vpc}&CidrBlock={}",
            enc("10.50.1.0/24")
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(exit_signal(&mut victim), Some(libc::SIGKILL));
    let s = proxy.stats();
    assert_eq!(s["killed"], true, "{s}");
    assert_eq!(s["kill"]["after_seq"], 3, "{s}");
    assert_eq!(s["kill"]["op"], "CreateSubnet", "{s}");
    drop(moto);
}

#[test]
fn kill_hook_reads_pid_file_and_uses_configured_signal() {
    let (_moto, proxy) = moto_and_proxy(&["eks"], &[]);
    let p = proxy.port;
    let mut victim = spawn_sleeper();
    let pid_file = std::env::temp_dir().join(format!("afp-pid-{}", std::process::id()));
    proxy.config(json!({
        "kill_after_mutating": 1,
        "kill_pid_file": pid_file.to_string_lossy(),
        "kill_signal": "SIGTERM"
    }));
    // The pid file is read when the hook fires, so it may appear late.
    std::fs::write(&pid_file, format!("{}\n", victim.0.id())).expect("write pid file");
    let r = eks(
        p,
        "POST",
        "/clusters",
        Some(json!({
            "name": "killc",
            "roleArn": "arn:aws:iam::123456789012:role/eks",
            "resourcesVpcConfig": {"subnetIds": ["subnet-1"]}
        })),
    );
    assert_eq!(r.status, 200);
    assert_eq!(exit_signal(&mut victim), Some(libc::SIGTERM));
    let _ = std::fs::remove_file(&pid_file);
    assert_eq!(proxy.stats()["killed"], true);
}

#[test]
fn control_api_merges_validates_and_resets() {
    let (moto, proxy) = moto_and_proxy(&["ec2"], &["--latency-ms", "5"]);
    let p = proxy.port;
    let c = proxy.config(json!({"transition_ms": 300, "stack_delete_ms": 10}));
    assert_eq!(c["latency_ms"], 5);
    assert_eq!(c["cluster_create_ms"], 300);
    assert_eq!(c["stack_delete_ms"], 10);
    let r = request(p, "POST", "/__proxy/config", &[], br#"{"latency_msx": 1}"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("latency_msx"));
    let r = request(
        p,
        "POST",
        "/__proxy/config",
        &[],
        br#"{"throttle_fraction": 3}"#,
    );
    assert_eq!(r.status, 400);
    let r = request(p, "GET", "/__proxy/config", &[], b"");
    assert_eq!(r.json()["throttle_fraction"], 0.0);
    proxy.config(json!({"kill_after_mutating": 5, "kill_pid": 999_999}));

    create_vpc(p, "10.50.0.0/16");
    assert_eq!(moto_vpcs_with_cidr(&moto, "10.50.0.0/16"), 1);
    let r = request(p, "POST", "/__proxy/reset", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        moto_vpcs_with_cidr(&moto, "10.50.0.0/16"),
        0,
        "moto was not reset"
    );
    assert_eq!(proxy.stats()["total"], 0);
    let c = request(p, "GET", "/__proxy/config", &[], b"").json();
    assert_eq!(c["kill_after_mutating"], serde_json::Value::Null);
    assert_eq!(c["latency_ms"], 5, "reset keeps the fault settings");
    assert_eq!(request(p, "GET", "/__proxy/nope", &[], b"").status, 404);
}

/// A request whose client hangs up is still carried out to the upstream's answer, as AWS
/// finishes what it received: it counts as in flight until then, and its record says
/// `client_gone`. (Tests that kill eksnet wait for the proxy to be idle on this basis.)
#[test]
fn request_of_a_client_that_hung_up_stays_in_flight_until_answered() {
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_port = upstream.local_addr().expect("addr").port();
    let answered = std::thread::spawn(move || {
        let (mut s, _) = upstream.accept().expect("accept");
        let mut chunk = [0u8; 4096];
        let _ = s.read(&mut chunk).expect("read");
        // Slower than the client is patient.
        std::thread::sleep(Duration::from_millis(800));
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .is_ok()
    });
    let proxy = Proxy::start(&format!("http://127.0.0.1:{up_port}"), &[]);
    {
        let mut client =
            std::net::TcpStream::connect(("127.0.0.1", proxy.port)).expect("connect proxy");
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: ec2.us-west-2.amazonaws.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 30\r\n\r\nAction=CreateVpc&Version=2016")
            .expect("write");
        client.write_all(b"1").expect("write");
        std::thread::sleep(Duration::from_millis(200));
        // The client goes away without reading the answer.
    }
    std::thread::sleep(Duration::from_millis(200));
    let during = proxy.stats();
    assert_eq!(during["in_flight"], 1, "still carried out: {during}");
    assert_eq!(during["total"], 0, "{during}");
    assert!(
        answered.join().expect("upstream thread"),
        "the upstream's answer was read"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let s = proxy.stats();
        if s["in_flight"] == 0 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(after["in_flight"], 0, "{after}");
    assert_eq!(after["requests"][0]["op"], "CreateVpc", "{after}");
    assert_eq!(after["requests"][0]["fault"], "client_gone", "{after}");
    assert_eq!(after["requests"][0]["status"], 499, "{after}");
}
