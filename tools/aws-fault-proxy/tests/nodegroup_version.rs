//! EKS UpdateNodegroupVersion, which the proxy answers itself (moto 5.2 has no route for it):
//! real moto_server behind the real proxy, launch templates made in moto's EC2, driven with
//! raw HTTP, and once with aws-sdk-eks (the SDK eksnet uses) to check the answers parse and
//! that a lost answer is retried into the same update.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::types::{LaunchTemplateSpecification, UpdateParamType, UpdateStatus, UpdateType};
use aws_smithy_http_client::tls;
use common::*;
use serde_json::{json, Value};

const WINDOW: Duration = Duration::from_millis(400);
const MARGIN: Duration = Duration::from_millis(150);

fn proxy_with(args: &[&str]) -> (Moto, Proxy) {
    moto_and_proxy(&["eks", "ec2"], args)
}

fn create_cluster(p: u16, name: &str) {
    let body = json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "resourcesVpcConfig": {"subnetIds": ["subnet-1"]}
    });
    let r = eks(p, "POST", "/clusters", Some(body));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A launch template in moto's EC2 with versions 1..=`versions`; returns its id.
fn create_template(p: u16, name: &str, versions: u32) -> String {
    let r = query(
        p,
        "ec2",
        &format!(
            "Action=CreateLaunchTemplate&LaunchTemplateName={name}\
             &LaunchTemplateData.InstanceType=t3.small"
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = xml(&r.body, "launchTemplateId").expect("launchTemplateId");
    for n in 2..=versions {
        let r = query(
            p,
            "ec2",
            &format!(
                "Action=CreateLaunchTemplateVersion&LaunchTemplateId={id}\
                 &LaunchTemplateData.InstanceType=t3.large"
            ),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(xml(&r.body, "versionNumber"), Some(n.to_string()));
    }
    id
}

fn ng_body(name: &str, template_id: Option<&str>) -> Value {
    let mut body = json!({
        "nodegroupName": name,
        "nodeRole": "arn:aws:iam::123456789012:role/node",
        "subnets": ["subnet-1"]
    });
    if let Some(id) = template_id {
        body["launchTemplate"] = json!({"id": id, "version": "1"});
    }
    body
}

/// A nodegroup on version 1 of the template (or on none), created through `port` (the
/// proxy's, or moto's own to bypass the proxy).
fn create_nodegroup(port: u16, cluster: &str, name: &str, template_id: Option<&str>) {
    let path = format!("/clusters/{cluster}/node-groups");
    let r = eks(port, "POST", &path, Some(ng_body(name, template_id)));
    assert_eq!(r.status, 200, "{}", r.body);
}

fn describe(port: u16, cluster: &str, ng: &str) -> Value {
    let r = eks(
        port,
        "GET",
        &format!("/clusters/{cluster}/node-groups/{ng}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["nodegroup"].clone()
}

fn update(p: u16, cluster: &str, ng: &str, body: Value) -> Resp {
    eks(
        p,
        "POST",
        &format!("/clusters/{cluster}/node-groups/{ng}/update-version"),
        Some(body),
    )
}

fn to_version(id: &str, version: &str) -> Value {
    json!({"launchTemplate": {"id": id, "version": version}, "clientRequestToken": fresh_token()})
}

fn fresh_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("token-{nanos}")
}

fn describe_update(p: u16, cluster: &str, ng: &str, id: &str) -> Resp {
    eks(
        p,
        "GET",
        &format!("/clusters/{cluster}/updates/{id}?nodegroupName={ng}"),
        None,
    )
}

/// Asserts an EKS error: status, `x-amzn-ErrorType` and the resources named in the body.
fn assert_error(r: &Resp, status: u16, kind: &str, cluster: &str, ng: &str) -> String {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.header("x-amzn-ErrorType"), Some(kind), "{}", r.body);
    let body = r.json();
    assert_eq!(body["clusterName"], cluster, "{body}");
    assert_eq!(body["nodegroupName"], ng, "{body}");
    body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"))
        .to_string()
}

/// The stats' records of one operation.
fn records(proxy: &Proxy, op: &str) -> Vec<Value> {
    proxy.stats()["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["op"] == op)
        .collect()
}

#[test]
fn update_moves_the_nodegroup_to_the_new_template_version() {
    let (moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    create_cluster(p, "u1");
    let lt = create_template(p, "lt-u1", 3);
    create_nodegroup(p, "u1", "ng", Some(&lt));
    assert_eq!(describe(p, "u1", "ng")["launchTemplate"]["version"], "1");

    let r = update(
        p,
        "u1",
        "ng",
        json!({"launchTemplate": {"id": lt, "version": "2"}, "force": false,
               "clientRequestToken": "t-1"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let u = r.json()["update"].clone();
    let id = u["id"].as_str().expect("update id").to_string();
    assert_eq!(id.len(), 36, "{u}");
    assert_eq!(u["status"], "InProgress");
    assert_eq!(u["type"], "VersionUpdate");
    assert_eq!(
        u["params"],
        json!([{"type": "LaunchTemplateVersion", "value": "2"},
               {"type": "LaunchTemplateName", "value": "lt-u1"}])
    );
    assert_eq!(u["errors"], json!([]));
    let created_at = u["createdAt"].as_f64().expect("createdAt is a number");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    assert!((created_at - now).abs() < 60.0, "{created_at} vs {now}");

    let ng = describe(p, "u1", "ng");
    assert_eq!(
        ng["launchTemplate"],
        json!({"name": "lt-u1", "id": lt, "version": "2"})
    );
    assert_eq!(ng["status"], "ACTIVE", "no window configured: {ng}");
    // An overlay of the proxy's: moto itself still has the version it was created with.
    assert_eq!(
        describe(moto.port, "u1", "ng")["launchTemplate"]["version"],
        "1"
    );
    let r = describe_update(p, "u1", "ng", &id);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["update"]["status"], "Successful");
    assert_eq!(r.json()["update"]["params"], u["params"]);
    let r = describe_update(p, "u1", "ng", "00000000-0000-0000-0000-000000000000");
    assert_error(&r, 404, "ResourceNotFoundException", "u1", "ng");

    // `$Latest` and no version (the default, still 1) resolve to numbers, as EKS shows them;
    // the template may be named instead of given by id.
    let r = update(
        p,
        "u1",
        "ng",
        json!({"launchTemplate": {"name": "lt-u1", "version": "$Latest"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(describe(p, "u1", "ng")["launchTemplate"]["version"], "3");
    let r = update(p, "u1", "ng", json!({"launchTemplate": {"id": lt}}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["update"]["params"][0]["value"], "1");
    assert_eq!(describe(p, "u1", "ng")["launchTemplate"]["version"], "1");
    // A Kubernetes version update is accepted and listed; the template version stays.
    update(p, "u1", "ng", to_version(&lt, "2"));
    let r = update(
        p,
        "u1",
        "ng",
        json!({"version": "1.31", "releaseVersion": "1.31.0-1"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["update"]["params"],
        json!([{"type": "Version", "value": "1.31"},
               {"type": "ReleaseVersion", "value": "1.31.0-1"}])
    );
    assert_eq!(describe(p, "u1", "ng")["launchTemplate"]["version"], "2");

    // Mutating, counted once per request; the proxy's own calls to moto are not counted.
    let ups = records(&proxy, "UpdateNodegroupVersion");
    assert_eq!(ups.len(), 5, "{ups:?}");
    assert!(ups
        .iter()
        .all(|r| r["mutating"] == true && r["status"] == 200));
    assert_eq!(records(&proxy, "DescribeNodegroup").len(), 5);
    assert!(records(&proxy, "DescribeLaunchTemplates").is_empty());
}

#[test]
fn updating_window_then_active_and_a_second_update_meanwhile_is_in_use() {
    let (_moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    create_cluster(p, "w1");
    let lt = create_template(p, "lt-w1", 3);
    create_nodegroup(p, "w1", "ng", Some(&lt));
    let ms = WINDOW.as_millis() as u64;
    proxy.config(json!({"nodegroup_update_ms": ms}));

    let body = json!({"launchTemplate": {"id": lt, "version": "2"}, "clientRequestToken": "t-w"});
    let r = update(p, "w1", "ng", body.clone());
    let updated = Instant::now();
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["update"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ng = describe(p, "w1", "ng");
    assert_eq!(ng["status"], "UPDATING", "{ng}");
    assert_eq!(ng["launchTemplate"]["version"], "2", "{ng}");
    assert_eq!(
        describe_update(p, "w1", "ng", &id).json()["update"]["status"],
        "InProgress"
    );
    // Another update is refused while this one runs; a retry of this one (same token) gets
    // its answer again.
    let r = update(p, "w1", "ng", to_version(&lt, "3"));
    let message = assert_error(&r, 409, "ResourceInUseException", "w1", "ng");
    assert!(message.contains("UPDATING"), "{message}");
    let again = update(p, "w1", "ng", body);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["update"]["id"], id.as_str());
    assert!(
        updated.elapsed() < WINDOW,
        "machine too slow for the window"
    );

    sleep_until(updated + WINDOW + MARGIN);
    let ng = describe(p, "w1", "ng");
    assert_eq!(ng["status"], "ACTIVE", "{ng}");
    assert_eq!(ng["launchTemplate"]["version"], "2", "{ng}");
    assert_eq!(
        describe_update(p, "w1", "ng", &id).json()["update"]["status"],
        "Successful"
    );
    let r = update(p, "w1", "ng", to_version(&lt, "3"));
    assert_eq!(r.status, 200, "{}", r.body);
    let records = records(&proxy, "DescribeNodegroup");
    assert_eq!(records[0]["fault"], "transition", "{records:?}");
    assert_eq!(records[1]["fault"], Value::Null, "{records:?}");
}

#[test]
fn refused_updates_have_eks_errors_and_change_nothing() {
    let (_moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    create_cluster(p, "e1");
    let lt = create_template(p, "lt-e1", 2);
    let other = create_template(p, "lt-e1-other", 2);
    create_nodegroup(p, "e1", "ng", Some(&lt));
    create_nodegroup(p, "e1", "plain", None);

    // A nodegroup without a launch template cannot be given one.
    let r = update(p, "e1", "plain", to_version(&lt, "2"));
    let message = assert_error(&r, 400, "InvalidParameterException", "e1", "plain");
    assert!(message.contains("launch template"), "{message}");
    assert!(describe(p, "e1", "plain").get("launchTemplate").is_none());
    // ... but its Kubernetes version can be updated.
    let r = update(p, "e1", "plain", json!({"version": "1.31"}));
    assert_eq!(r.status, 200, "{}", r.body);

    // Another template, by id or by name, is refused.
    let r = update(p, "e1", "ng", to_version(&other, "2"));
    let message = assert_error(&r, 400, "InvalidParameterException", "e1", "ng");
    assert!(
        message.contains(&other) && message.contains(&lt),
        "{message}"
    );
    let r = update(
        p,
        "e1",
        "ng",
        json!({"launchTemplate": {"name": "lt-e1-other", "version": "2"}}),
    );
    assert_error(&r, 400, "InvalidParameterException", "e1", "ng");
    let r = update(
        p,
        "e1",
        "ng",
        json!({"launchTemplate": {"id": lt, "name": "lt-e1-other", "version": "2"}}),
    );
    assert_error(&r, 400, "InvalidParameterException", "e1", "ng");
    // Nothing to update, or malformed.
    for body in [
        json!({}),
        json!({"clientRequestToken": "t", "force": true}),
        json!({"launchTemplate": {"version": "2"}}),
        json!({"launchTemplate": {"id": lt, "version": "two"}}),
        json!({"launchTemplate": "lt"}),
        json!({"version": 131}),
    ] {
        let r = update(p, "e1", "ng", body.clone());
        assert_error(&r, 400, "InvalidParameterException", "e1", "ng");
    }
    assert_eq!(describe(p, "e1", "ng")["launchTemplate"]["version"], "1");
    assert_eq!(describe(p, "e1", "ng")["status"], "ACTIVE");

    // Unknown nodegroup or cluster: EKS's 404, in moto's words.
    let r = update(p, "e1", "nope", to_version(&lt, "2"));
    let message = assert_error(&r, 404, "ResourceNotFoundException", "e1", "nope");
    assert_eq!(message, "No node group found for name: nope.");
    let r = update(p, "gone", "ng", to_version(&lt, "2"));
    let message = assert_error(&r, 404, "ResourceNotFoundException", "gone", "ng");
    assert_eq!(message, "No cluster found for name: gone.");
    // Each refusal is recorded with its status, as moto's refusals are.
    let statuses: Vec<Value> = records(&proxy, "UpdateNodegroupVersion")
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses.len(), 13, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 10);
}

#[test]
fn delete_create_and_reset_drop_the_overlay() {
    let (moto, proxy) = proxy_with(&["--nodegroup-delete-ms", "6000"]);
    let p = proxy.port;
    create_cluster(p, "d1");
    let lt = create_template(p, "lt-d1", 2);
    create_nodegroup(p, "d1", "ng", Some(&lt));
    assert_eq!(update(p, "d1", "ng", to_version(&lt, "2")).status, 200);

    // The delete answer, and the nodegroup replayed while DELETING, are on version 2.
    let r = eks(p, "DELETE", "/clusters/d1/node-groups/ng", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["nodegroup"]["status"], "DELETING");
    assert_eq!(r.json()["nodegroup"]["launchTemplate"]["version"], "2");
    let deleting = describe(p, "d1", "ng");
    assert_eq!(deleting["status"], "DELETING");
    assert_eq!(deleting["launchTemplate"]["version"], "2");
    // EKS refuses to update a nodegroup being deleted.
    let r = update(p, "d1", "ng", to_version(&lt, "2"));
    assert_error(&r, 409, "ResourceInUseException", "d1", "ng");

    // Nor does it take a second delete.
    let r = eks(p, "DELETE", "/clusters/d1/node-groups/ng", None);
    let message = assert_error(&r, 409, "ResourceInUseException", "d1", "ng");
    assert!(message.contains("DELETING"), "{message}");

    // The delete dropped the overlay. To see it, the DELETING window must go first; a
    // nodegroup recreated in moto alone then shows moto's version.
    std::thread::sleep(std::time::Duration::from_millis(6100));
    create_nodegroup(moto.port, "d1", "ng", Some(&lt));
    assert_eq!(describe(p, "d1", "ng")["launchTemplate"]["version"], "1");

    // Deleted behind the proxy's back and recreated through it: the create drops it.
    assert_eq!(update(p, "d1", "ng", to_version(&lt, "2")).status, 200);
    let r = eks(moto.port, "DELETE", "/clusters/d1/node-groups/ng", None);
    assert_eq!(r.status, 200, "{}", r.body);
    create_nodegroup(p, "d1", "ng", Some(&lt));
    assert_eq!(describe(p, "d1", "ng")["launchTemplate"]["version"], "1");

    // The reset forgets it: recreated in moto alone, the nodegroup shows moto's version.
    assert_eq!(update(p, "d1", "ng", to_version(&lt, "2")).status, 200);
    assert_eq!(describe(p, "d1", "ng")["launchTemplate"]["version"], "2");
    let r = request(p, "POST", "/__proxy/reset", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    create_cluster(moto.port, "d1");
    let lt = create_template(moto.port, "lt-d1", 2);
    create_nodegroup(moto.port, "d1", "ng", Some(&lt));
    assert_eq!(describe(p, "d1", "ng")["launchTemplate"]["version"], "1");
}

/// One request whose answer is expected to be lost: the raw bytes the proxy sent (none).
fn raw_answer(port: u16, path: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/eks/aws4_request, SignedHeaders=host, Signature=0000\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    let mut raw = Vec::new();
    // A reset connection is as good as a closed one here: either way no answer.
    let _ = s.read_to_end(&mut raw);
    raw
}

#[test]
fn update_is_faulted_rejected_lost_and_seen_by_the_kill_hook() {
    let (_moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    create_cluster(p, "f1");
    let lt = create_template(p, "lt-f1", 3);
    create_nodegroup(p, "f1", "ng", Some(&lt));

    proxy.config(json!({"throttle_fraction": 1.0}));
    let r = update(p, "f1", "ng", to_version(&lt, "2"));
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("ThrottlingException"));
    proxy.config(json!({"throttle_fraction": 0.0, "reject_op": "UpdateNodegroupVersion"}));
    let r = update(p, "f1", "ng", to_version(&lt, "2"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidParameterException")
    );
    assert!(r.body.contains("reject_op"), "{}", r.body);
    proxy.config(json!({"reject_op": null}));
    assert_eq!(describe(p, "f1", "ng")["launchTemplate"]["version"], "1");

    // A lost answer: the update is made, the client gets no byte.
    proxy.config(json!({"lose_answer_op": "UpdateNodegroupVersion", "lose_answer_count": 1}));
    let raw = raw_answer(
        p,
        "/clusters/f1/node-groups/ng/update-version",
        &to_version(&lt, "2"),
    );
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    assert_eq!(describe(p, "f1", "ng")["launchTemplate"]["version"], "2");
    let faults: Vec<Value> = records(&proxy, "UpdateNodegroupVersion")
        .iter()
        .map(|r| r["fault"].clone())
        .collect();
    assert_eq!(
        faults,
        vec![json!("throttle"), json!("rejected"), json!("lost_answer")]
    );
    assert_eq!(proxy.config(json!({}))["lose_answer_count"], 0);

    // The kill hook counts it as a mutating request of its own operation.
    let mut victim = Proc(
        std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep"),
    );
    proxy.config(json!({
        "kill_after_mutating": 1,
        "kill_op": "UpdateNodegroupVersion",
        "kill_pid": victim.0.id()
    }));
    describe(p, "f1", "ng");
    let r = query(
        p,
        "ec2",
        &format!(
            "Action=CreateLaunchTemplateVersion&LaunchTemplateId={lt}\
             &LaunchTemplateData.InstanceType=t3.xlarge"
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(victim.0.try_wait(), Ok(None)), "killed too early");
    assert_eq!(update(p, "f1", "ng", to_version(&lt, "3")).status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Ok(Some(status)) = victim.0.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    let s = proxy.stats();
    assert_eq!(s["kill"]["op"], "UpdateNodegroupVersion", "{s}");
    assert_eq!(s["killed"], true, "{s}");
    assert_eq!(describe(p, "f1", "ng")["launchTemplate"]["version"], "3");
}

fn sdk_client(port: u16) -> aws_sdk_eks::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_eks::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .http_client(http)
        .build();
    aws_sdk_eks::Client::from_conf(config)
}

#[test]
fn aws_sdk_eks_parses_the_update_and_retries_a_lost_answer_into_it() {
    let (_moto, proxy) = proxy_with(&["--nodegroup-update-ms", "60000"]);
    let p = proxy.port;
    create_cluster(p, "s1");
    let lt = create_template(p, "lt-s1", 2);
    create_nodegroup(p, "s1", "ng", Some(&lt));
    create_nodegroup(p, "s1", "plain", None);
    proxy.config(json!({"lose_answer_op": "UpdateNodegroupVersion", "lose_answer_count": 1}));
    let eks = sdk_client(p);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let spec = LaunchTemplateSpecification::builder()
            .id(&lt)
            .version("2")
            .build();
        // The first answer is lost; the SDK sends the request again with the token it made,
        // and gets the same update rather than a 409 for the update it started.
        let out = eks
            .update_nodegroup_version()
            .cluster_name("s1")
            .nodegroup_name("ng")
            .launch_template(spec.clone())
            .send()
            .await
            .expect("update after one retry");
        let update = out.update().expect("update");
        assert_eq!(update.status(), Some(&UpdateStatus::InProgress));
        assert_eq!(update.r#type(), Some(&UpdateType::VersionUpdate));
        assert!(update.created_at().is_some());
        let params: Vec<_> = update
            .params()
            .iter()
            .map(|p| (p.r#type().cloned(), p.value().map(str::to_string)))
            .collect();
        assert_eq!(
            params,
            vec![
                (
                    Some(UpdateParamType::LaunchTemplateVersion),
                    Some("2".to_string())
                ),
                (
                    Some(UpdateParamType::LaunchTemplateName),
                    Some("lt-s1".to_string())
                ),
            ]
        );
        let ng = eks
            .describe_nodegroup()
            .cluster_name("s1")
            .nodegroup_name("ng")
            .send()
            .await
            .expect("describe");
        let ng = ng.nodegroup().expect("nodegroup");
        assert_eq!(ng.status().map(|s| s.as_str()), Some("UPDATING"));
        assert_eq!(ng.launch_template().and_then(|t| t.version()), Some("2"));
        let refused = eks
            .update_nodegroup_version()
            .cluster_name("s1")
            .nodegroup_name("plain")
            .launch_template(spec)
            .send()
            .await
            .expect_err("no launch template to update");
        assert_eq!(refused.code(), Some("InvalidParameterException"));
    });
    let faults: Vec<Value> = records(&proxy, "UpdateNodegroupVersion")
        .iter()
        .map(|r| r["fault"].clone())
        .collect();
    assert_eq!(faults, vec![json!("lost_answer"), Value::Null, Value::Null]);
}
