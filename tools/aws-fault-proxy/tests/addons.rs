//! The EKS add-on API the proxy serves itself: real moto_server behind the real proxy (moto
//! only tells which clusters exist), driven with raw HTTP; for the Kubernetes side the fake
//! Kubernetes API server of `tools/fake-kube-apiserver`, or a scripted server where an answer
//! the fake cannot give (a field-manager conflict) is needed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const WINDOW: Duration = Duration::from_millis(400);
const MARGIN: Duration = Duration::from_millis(150);
const DS_PATH: &str = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node";
const CNI_IMAGE: &str = "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni";
const CONFLICT_MESSAGE: &str = "Conflicts found when trying to apply. Will not continue due to \
     resolve conflicts mode. Conflicts:\nDaemonSet.apps aws-node - \
     .spec.template.spec.containers[name=\"aws-node\"].image";

fn proxy_with(args: &[&str]) -> (Moto, Proxy) {
    moto_and_proxy(&["eks"], args)
}

/// A cluster in moto, made through the proxy; `version` None leaves moto's default (1.19).
fn create_cluster(p: u16, name: &str, version: Option<&str>) {
    let mut body = json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "resourcesVpcConfig": {"subnetIds": ["subnet-1", "subnet-2"]}
    });
    if let Some(v) = version {
        body["version"] = json!(v);
    }
    let r = eks(p, "POST", "/clusters", Some(body));
    assert_eq!(r.status, 200, "{}", r.body);
}

fn create(p: u16, cluster: &str, body: Value) -> Resp {
    eks(
        p,
        "POST",
        &format!("/clusters/{cluster}/addons"),
        Some(body),
    )
}

fn describe(p: u16, cluster: &str, addon: &str) -> Resp {
    eks(
        p,
        "GET",
        &format!("/clusters/{cluster}/addons/{addon}"),
        None,
    )
}

fn update(p: u16, cluster: &str, addon: &str, body: Value) -> Resp {
    eks(
        p,
        "POST",
        &format!("/clusters/{cluster}/addons/{addon}/update"),
        Some(body),
    )
}

fn delete(p: u16, cluster: &str, addon: &str, preserve: Option<bool>) -> Resp {
    let query = preserve
        .map(|b| format!("?preserve={b}"))
        .unwrap_or_default();
    eks(
        p,
        "DELETE",
        &format!("/clusters/{cluster}/addons/{addon}{query}"),
        None,
    )
}

fn describe_update(p: u16, cluster: &str, id: &str, addon: &str) -> Resp {
    eks(
        p,
        "GET",
        &format!("/clusters/{cluster}/updates/{id}?addonName={addon}"),
        None,
    )
}

fn status_of(p: u16, cluster: &str, addon: &str) -> String {
    let r = describe(p, cluster, addon);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["addon"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Asserts an EKS error: status, `x-amzn-ErrorType` and the whole JSON body.
fn assert_error(r: &Resp, status: u16, kind: &str, body: Value) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.header("x-amzn-ErrorType"), Some(kind), "{}", r.body);
    assert_eq!(r.json(), body);
}

fn message(r: &Resp) -> String {
    r.json()["message"].as_str().unwrap_or_default().to_string()
}

fn env_of(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    let v = e.get("value").cloned().unwrap_or(Value::Null);
                    (e["name"].as_str().unwrap_or_default().to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env_value(container: &Value, name: &str) -> Option<String> {
    env_of(container)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_str().map(str::to_string))
}

fn aws_node_container(ds: &Value) -> Value {
    ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "aws-node"))
        .cloned()
        .unwrap_or_else(|| panic!("no aws-node container in {ds}"))
}

#[test]
fn addon_lifecycle_follows_the_windows() {
    let (_moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    let ms = WINDOW.as_millis() as u64;
    proxy.config(json!({"addon_create_ms": ms, "addon_update_ms": ms, "addon_delete_ms": ms}));
    create_cluster(p, "ac1", Some("1.31"));

    let config = r#"{"env":{"WARM_ENI_TARGET":"2"}}"#;
    let r = create(
        p,
        "ac1",
        json!({
            "addonName": "vpc-cni",
            "addonVersion": "v1.19.2-eksbuild.1",
            "serviceAccountRoleArn": "arn:aws:iam::123456789012:role/cni",
            "resolveConflicts": "OVERWRITE",
            "configurationValues": config,
            "tags": {"team": "net"},
            "clientRequestToken": "t-1"
        }),
    );
    let created = Instant::now();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let a = r.json()["addon"].clone();
    assert_eq!(a["addonName"], "vpc-cni");
    assert_eq!(a["clusterName"], "ac1");
    assert_eq!(a["status"], "CREATING");
    assert_eq!(a["addonVersion"], "v1.19.2-eksbuild.1");
    assert_eq!(a["health"], json!({"issues": []}));
    let arn = a["addonArn"].as_str().expect("addonArn");
    let uuid = arn
        .strip_prefix("arn:aws:eks:us-east-1:123456789012:addon/ac1/vpc-cni/")
        .unwrap_or_else(|| panic!("{arn}"));
    assert_eq!(uuid.len(), 36, "{arn}");
    let created_at = a["createdAt"].as_f64().expect("createdAt is a number");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((created_at - now).abs() < 60.0, "{created_at} vs {now}");
    assert_eq!(a["modifiedAt"].as_f64(), Some(created_at));
    assert_eq!(
        a["serviceAccountRoleArn"],
        "arn:aws:iam::123456789012:role/cni"
    );
    assert_eq!(a["tags"], json!({"team": "net"}));
    assert_eq!(a["configurationValues"], config);

    assert_eq!(status_of(p, "ac1", "vpc-cni"), "CREATING");
    let r = eks(p, "GET", "/clusters/ac1/addons", None);
    assert_eq!(r.json(), json!({"addons": ["vpc-cni"], "nextToken": null}));
    assert!(
        created.elapsed() < WINDOW,
        "machine too slow for the window"
    );
    sleep_until(created + WINDOW + MARGIN);
    let r = describe(p, "ac1", "vpc-cni");
    assert_eq!(r.json()["addon"]["status"], "ACTIVE", "{}", r.body);
    assert_eq!(r.json()["addon"]["addonArn"], arn);

    // Without a version: the default for the cluster's Kubernetes version (1.31).
    let r = create(p, "ac1", json!({"addonName": "coredns"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["addon"]["addonVersion"], "v1.11.4-eksbuild.14");
    assert!(r.json()["addon"].get("configurationValues").is_none());
    assert!(r.json()["addon"].get("serviceAccountRoleArn").is_none());
    assert_eq!(r.json()["addon"]["tags"], json!({}));
    let r = eks(p, "GET", "/clusters/ac1/addons?maxResults=1", None);
    assert_eq!(r.json(), json!({"addons": ["coredns"], "nextToken": "1"}));
    let r = eks(
        p,
        "GET",
        "/clusters/ac1/addons?maxResults=1&nextToken=1",
        None,
    );
    assert_eq!(r.json(), json!({"addons": ["vpc-cni"], "nextToken": null}));

    let new_config = r#"{"env":{"WARM_ENI_TARGET":"3"}}"#;
    let r = update(
        p,
        "ac1",
        "vpc-cni",
        json!({
            "addonVersion": "v1.20.0-eksbuild.1",
            "resolveConflicts": "OVERWRITE",
            "configurationValues": new_config,
            "clientRequestToken": "u-1"
        }),
    );
    let updated = Instant::now();
    assert_eq!(r.status, 200, "{}", r.body);
    let u = r.json()["update"].clone();
    let id = u["id"].as_str().expect("update id").to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(u["status"], "InProgress");
    assert_eq!(u["type"], "AddonUpdate");
    assert_eq!(
        u["params"],
        json!([
            {"type": "AddonVersion", "value": "v1.20.0-eksbuild.1"},
            {"type": "ResolveConflicts", "value": "OVERWRITE"},
            {"type": "ConfigurationValues", "value": new_config}
        ])
    );
    assert_eq!(u["errors"], json!([]));
    assert!(u["createdAt"].as_f64().is_some());

    let r = describe(p, "ac1", "vpc-cni");
    assert_eq!(r.json()["addon"]["status"], "UPDATING");
    // The change shows once the update has succeeded.
    assert_eq!(r.json()["addon"]["addonVersion"], "v1.19.2-eksbuild.1");
    let again = update(
        p,
        "ac1",
        "vpc-cni",
        json!({"addonVersion": "v1.19.6-eksbuild.1"}),
    );
    assert_error(
        &again,
        409,
        "ResourceInUseException",
        json!({"clusterName": "ac1", "addonName": "vpc-cni",
               "message": "Addon vpc-cni cannot be updated as it is currently in UPDATING state"}),
    );
    let r = describe_update(p, "ac1", &id, "vpc-cni");
    assert_eq!(r.json()["update"]["status"], "InProgress", "{}", r.body);
    let r = eks(p, "GET", "/clusters/ac1/updates?addonName=vpc-cni", None);
    assert_eq!(r.json(), json!({"updateIds": [id], "nextToken": null}));
    assert!(
        updated.elapsed() < WINDOW,
        "machine too slow for the window"
    );

    sleep_until(updated + WINDOW + MARGIN);
    let a = describe(p, "ac1", "vpc-cni").json()["addon"].clone();
    assert_eq!(a["status"], "ACTIVE");
    assert_eq!(a["addonVersion"], "v1.20.0-eksbuild.1");
    assert_eq!(a["configurationValues"], new_config);
    assert_eq!(
        a["serviceAccountRoleArn"],
        "arn:aws:iam::123456789012:role/cni"
    );
    assert!(a["modifiedAt"].as_f64() > a["createdAt"].as_f64(), "{a}");
    let r = describe_update(p, "ac1", &id, "vpc-cni");
    assert_eq!(r.json()["update"]["status"], "Successful");
    assert_eq!(r.json()["update"]["errors"], json!([]));

    let r = delete(p, "ac1", "vpc-cni", None);
    let deleted = Instant::now();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["addon"]["status"], "DELETING");
    assert_eq!(r.json()["addon"]["addonArn"], arn);
    assert_eq!(status_of(p, "ac1", "vpc-cni"), "DELETING");
    // Deleting again answers with the deletion under way.
    let r = delete(p, "ac1", "vpc-cni", None);
    assert_eq!(r.json()["addon"]["status"], "DELETING");
    // The name is taken until the deletion is over.
    let r = create(p, "ac1", json!({"addonName": "vpc-cni"}));
    assert_error(
        &r,
        409,
        "ResourceInUseException",
        json!({"clusterName": "ac1", "addonName": "vpc-cni", "message": "Addon already exists."}),
    );
    assert!(
        deleted.elapsed() < WINDOW,
        "machine too slow for the window"
    );
    sleep_until(deleted + WINDOW + MARGIN);
    assert_error(
        &describe(p, "ac1", "vpc-cni"),
        404,
        "ResourceNotFoundException",
        json!({"clusterName": "ac1", "addonName": "vpc-cni",
               "message": "No addon: vpc-cni found in cluster: ac1"}),
    );
    let r = eks(p, "GET", "/clusters/ac1/addons", None);
    assert_eq!(r.json()["addons"], json!(["coredns"]));

    // Counted like any request; the proxy's own DescribeCluster calls to moto are not.
    let s = proxy.stats();
    for (op, n) in [
        ("CreateCluster", 1),
        ("CreateAddon", 3),
        ("UpdateAddon", 2),
        ("DeleteAddon", 2),
        ("DescribeUpdate", 2),
        ("ListUpdates", 1),
        ("ListAddons", 4),
    ] {
        assert_eq!(s["by_operation"][op], n, "{op}: {s}");
    }
    assert!(s["by_operation"].get("DescribeCluster").is_none(), "{s}");
    let requests = s["requests"].as_array().expect("requests");
    assert!(requests.iter().all(|r| r["fault"].is_null()), "{s}");
    assert_eq!(s["mutating"], 8, "{s}");
}

#[test]
fn errors_have_eks_shapes() {
    let (_moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    let no_cluster = json!({"clusterName": "nope", "message": "No cluster found for name: nope."});
    for r in [
        create(p, "nope", json!({"addonName": "vpc-cni"})),
        eks(p, "GET", "/clusters/nope/addons", None),
        describe(p, "nope", "vpc-cni"),
        delete(p, "nope", "vpc-cni", None),
        update(p, "nope", "vpc-cni", json!({})),
        describe_update(p, "nope", "u-1", "vpc-cni"),
    ] {
        assert_error(&r, 404, "ResourceNotFoundException", no_cluster.clone());
    }

    create_cluster(p, "ec1", Some("1.30"));
    let no_addon = json!({"clusterName": "ec1", "addonName": "vpc-cni",
                          "message": "No addon: vpc-cni found in cluster: ec1"});
    for r in [
        describe(p, "ec1", "vpc-cni"),
        delete(p, "ec1", "vpc-cni", Some(true)),
        update(
            p,
            "ec1",
            "vpc-cni",
            json!({"addonVersion": "v1.19.2-eksbuild.1"}),
        ),
        eks(p, "GET", "/clusters/ec1/updates?addonName=vpc-cni", None),
    ] {
        assert_error(&r, 404, "ResourceNotFoundException", no_addon.clone());
    }

    let invalid = |body: Value| {
        let r = create(p, "ec1", body);
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("InvalidParameterException")
        );
        r
    };
    let r = invalid(json!({"addonName": "no-such-addon"}));
    assert_eq!(
        r.json(),
        json!({"clusterName": "ec1", "addonName": "no-such-addon",
               "message": "Addon specified is not supported"})
    );
    for version in ["v9.9.9-eksbuild.1", "v1.33.0-eksbuild.2"] {
        // Unknown, and a kube-proxy for another Kubernetes version.
        let name = if version.starts_with("v1.33") {
            "kube-proxy"
        } else {
            "vpc-cni"
        };
        let r = invalid(json!({"addonName": name, "addonVersion": version}));
        assert_eq!(message(&r), "Addon version specified is not supported");
        assert_eq!(r.json()["addonName"], name);
    }
    let r = invalid(json!({"addonName": "vpc-cni", "resolveConflicts": "SOMETIMES"}));
    assert!(
        message(&r).contains("'SOMETIMES' at 'resolveConflicts'"),
        "{}",
        r.body
    );
    let r = invalid(json!({"addonName": "vpc-cni", "configurationValues": "{env:"}));
    assert!(
        message(&r).starts_with(
            "ConfigurationValue provided in request is not supported: Json parsing failed"
        ),
        "{}",
        r.body
    );
    let prefix = "ConfigurationValue provided in request is not supported: Json schema \
                  validation failed with error: ";
    for (config, expected) in [
        (
            json!({"env": {"NOT_A_KNOB": "1"}}),
            "[$.env.NOT_A_KNOB: is not defined in the schema and the schema does not allow \
             additional properties]",
        ),
        (
            json!({"env": {"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "yes"}}),
            "[$.env.AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: does not have a value in the \
             enumeration [true, false]]",
        ),
        (
            json!({"env": {"WARM_ENI_TARGET": 2}}),
            "[$.env.WARM_ENI_TARGET: integer found, string expected]",
        ),
        (
            json!({"env": {"MINIMUM_IP_TARGET": "many"}, "bogus": true}),
            "[$.bogus: is not defined in the schema and the schema does not allow additional \
             properties, $.env.MINIMUM_IP_TARGET: does not match the regex pattern ^[0-9]+$]",
        ),
    ] {
        let r = invalid(json!({"addonName": "vpc-cni", "configurationValues": config.to_string()}));
        assert_eq!(message(&r), format!("{prefix}{expected}"));
        assert_eq!(r.json()["addonName"], "vpc-cni");
    }
    // eniConfig only exists in the schema of newer versions.
    let eni_config = json!({"eniConfig": {"create": true, "region": "us-east-1",
        "subnets": {"us-east-1a": {"id": "subnet-1", "securityGroups": ["sg-1"]}}}})
    .to_string();
    let r = invalid(
        json!({"addonName": "vpc-cni", "addonVersion": "v1.18.6-eksbuild.1",
                           "configurationValues": eni_config}),
    );
    assert!(
        message(&r).contains("[$.eniConfig: is not defined"),
        "{}",
        r.body
    );
    assert_eq!(
        eks(p, "GET", "/clusters/ec1/addons", None).json()["addons"],
        json!([]),
        "refused creates leave nothing behind"
    );
    let r = create(
        p,
        "ec1",
        json!({"addonName": "vpc-cni", "addonVersion": "v1.19.2-eksbuild.1",
               "configurationValues": eni_config}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(status_of(p, "ec1", "vpc-cni"), "ACTIVE", "zero window");
    assert_error(
        &create(p, "ec1", json!({"addonName": "vpc-cni"})),
        409,
        "ResourceInUseException",
        json!({"clusterName": "ec1", "addonName": "vpc-cni", "message": "Addon already exists."}),
    );

    // An update is checked the same way, and a refused one changes nothing.
    let r = update(
        p,
        "ec1",
        "vpc-cni",
        json!({"configurationValues": r#"{"env":{"NOT_A_KNOB":"1"}}"#}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = update(
        p,
        "ec1",
        "vpc-cni",
        json!({"addonVersion": "v1.18.6-eksbuild.1"}),
    );
    // The kept configuration (with eniConfig) does not suit v1.18.
    assert!(
        message(&r).contains("$.eniConfig: is not defined"),
        "{}",
        r.body
    );
    let r = eks(p, "GET", "/clusters/ec1/updates?addonName=vpc-cni", None);
    assert_eq!(r.json()["updateIds"], json!([]));
    let a = describe(p, "ec1", "vpc-cni").json()["addon"].clone();
    assert_eq!(a["addonVersion"], "v1.19.2-eksbuild.1");
    assert_eq!(a["configurationValues"], eni_config);
    assert_error(
        &describe_update(p, "ec1", "nope", "vpc-cni"),
        404,
        "ResourceNotFoundException",
        json!({"clusterName": "ec1", "addonName": "vpc-cni", "message": "No update found for ID: nope"}),
    );
    let r = eks(p, "GET", "/clusters/ec1/addons?maxResults=0", None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(message(&r).contains("greater than or equal to 1"));

    proxy.config(json!({"addon_create_ms": 5000}));
    assert_eq!(
        create(p, "ec1", json!({"addonName": "coredns"})).status,
        200
    );
    assert_error(
        &update(p, "ec1", "coredns", json!({})),
        409,
        "ResourceInUseException",
        json!({"clusterName": "ec1", "addonName": "coredns",
               "message": "Addon coredns cannot be updated as it is currently in CREATING state"}),
    );
}

#[test]
fn client_request_token_makes_create_and_update_idempotent() {
    let (_moto, proxy) = proxy_with(&["--addon-create-ms", "300"]);
    let p = proxy.port;
    create_cluster(p, "ic1", Some("1.32"));
    let body = json!({"addonName": "kube-proxy", "clientRequestToken": "tok-1"});
    let first = create(p, "ic1", body.clone());
    assert_eq!(first.status, 200, "{}", first.body);
    // A retry with the same token gets the same answer (same ARN, same times).
    let retry = create(p, "ic1", body);
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.json(), first.json());
    assert_eq!(first.json()["addon"]["addonVersion"], "v1.32.0-eksbuild.2");
    for other in [
        json!({"addonName": "kube-proxy", "clientRequestToken": "tok-2"}),
        json!({"addonName": "kube-proxy"}),
    ] {
        let r = create(p, "ic1", other);
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.header("x-amzn-ErrorType"), Some("ResourceInUseException"));
    }
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(status_of(p, "ic1", "kube-proxy"), "ACTIVE");

    let body = json!({"addonVersion": "v1.32.6-eksbuild.2", "clientRequestToken": "up-1"});
    let first = update(p, "ic1", "kube-proxy", body.clone());
    assert_eq!(first.status, 200, "{}", first.body);
    let retry = update(p, "ic1", "kube-proxy", body);
    assert_eq!(retry.json(), first.json());
    let r = eks(p, "GET", "/clusters/ic1/updates?addonName=kube-proxy", None);
    assert_eq!(r.json()["updateIds"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        describe(p, "ic1", "kube-proxy").json()["addon"]["addonVersion"],
        "v1.32.6-eksbuild.2"
    );
}

#[test]
fn addon_versions_have_one_default_per_cluster_version() {
    let (_moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    let versions = |query: &str| {
        let r = eks(
            p,
            "GET",
            &format!("/addons/supported-versions{query}"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let all = versions("");
    let names: Vec<&str> = all["addons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["addonName"].as_str())
        .collect();
    assert_eq!(
        names,
        ["vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent"]
    );
    assert!(all["nextToken"].is_null());
    let mut defaults = Vec::new();
    for cv in ["1.29", "1.30", "1.31", "1.32", "1.33"] {
        let answer = versions(&format!("?kubernetesVersion={cv}"));
        let addons = answer["addons"].as_array().unwrap();
        assert_eq!(addons.len(), 4, "{cv}");
        for addon in addons {
            assert_eq!(addon["publisher"], "eks");
            assert_eq!(addon["owner"], "aws");
            assert!(addon["type"].is_string());
            let mut default = Vec::new();
            for v in addon["addonVersions"].as_array().unwrap() {
                assert_eq!(v["architecture"], json!(["amd64", "arm64"]));
                assert_eq!(v["requiresConfiguration"], false);
                assert!(v["requiresIamPermissions"].is_boolean());
                let compat = v["compatibilities"].as_array().unwrap();
                assert_eq!(compat.len(), 1, "only the asked version: {v}");
                assert_eq!(compat[0]["clusterVersion"], cv);
                assert_eq!(compat[0]["platformVersions"], json!(["*"]));
                if compat[0]["defaultVersion"] == true {
                    default.push(v["addonVersion"].as_str().unwrap().to_string());
                }
            }
            assert_eq!(default.len(), 1, "{cv} {}: {default:?}", addon["addonName"]);
            defaults.push((
                cv,
                addon["addonName"].as_str().unwrap().to_string(),
                default.remove(0),
            ));
        }
    }
    let default_of = |cv: &str, name: &str| {
        defaults
            .iter()
            .find(|(c, n, _)| *c == cv && n == name)
            .map(|(_, _, v)| v.clone())
    };
    assert_eq!(
        default_of("1.33", "vpc-cni").as_deref(),
        Some("v1.20.0-eksbuild.1")
    );
    assert_eq!(
        default_of("1.29", "vpc-cni").as_deref(),
        Some("v1.19.2-eksbuild.1")
    );
    assert_eq!(
        default_of("1.30", "kube-proxy").as_deref(),
        Some("v1.30.6-eksbuild.3")
    );

    // vpc-cni runs on all five versions; old releases are there for minimum-version tests.
    let vpc = versions("?addonName=vpc-cni");
    let listed: Vec<&str> = vpc["addons"][0]["addonVersions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["addonVersion"].as_str())
        .collect();
    for v in [
        "v1.20.0-eksbuild.1",
        "v1.19.2-eksbuild.1",
        "v1.18.3-eksbuild.1",
        "v1.6.3-eksbuild.2",
        "v1.6.3-eksbuild.1",
    ] {
        assert!(listed.contains(&v), "{v}: {listed:?}");
    }
    assert_eq!(
        vpc["addons"][0]["addonVersions"][0]["requiresIamPermissions"],
        true
    );
    assert_eq!(
        vpc["addons"][0]["addonVersions"][0]["compatibilities"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    let on_132 = versions("?addonName=vpc-cni&kubernetesVersion=1.32");
    let on_132 = on_132["addons"][0]["addonVersions"].to_string();
    assert!(!on_132.contains("v1.18.3-eksbuild.1") && on_132.contains("v1.18.6-eksbuild.1"));

    let security = versions("?types=security");
    assert_eq!(security["addons"].as_array().map(Vec::len), Some(1));
    assert_eq!(security["addons"][0]["addonName"], "eks-pod-identity-agent");
    assert_eq!(
        versions("?types=security&types=networking")["addons"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    assert_eq!(versions("?owners=someone-else")["addons"], json!([]));
    assert_eq!(versions("?addonName=no-such-addon")["addons"], json!([]));
    assert_eq!(versions("?kubernetesVersion=1.20")["addons"], json!([]));
    let first = versions("?maxResults=3");
    assert_eq!(first["addons"].as_array().map(Vec::len), Some(3));
    let token = first["nextToken"].as_str().expect("nextToken").to_string();
    let rest = versions(&format!("?maxResults=3&nextToken={token}"));
    assert_eq!(rest["addons"][0]["addonName"], "eks-pod-identity-agent");
    assert!(rest["nextToken"].is_null());

    // Creates use the same defaults. moto's version for a cluster created without one
    // (1.19) stands for EKS's current default, 1.33.
    create_cluster(p, "vc1", Some("1.29"));
    let r = create(p, "vc1", json!({"addonName": "vpc-cni"}));
    assert_eq!(
        r.json()["addon"]["addonVersion"],
        "v1.19.2-eksbuild.1",
        "{}",
        r.body
    );
    create_cluster(p, "vc2", None);
    let r = create(p, "vc2", json!({"addonName": "vpc-cni"}));
    assert_eq!(
        r.json()["addon"]["addonVersion"],
        "v1.20.0-eksbuild.1",
        "{}",
        r.body
    );
    let as_moto_default = versions("?addonName=kube-proxy&kubernetesVersion=1.19");
    assert_eq!(
        as_moto_default["addons"][0]["addonVersions"][0]["addonVersion"],
        "v1.33.3-eksbuild.4"
    );
}

#[test]
fn addon_configuration_serves_the_version_schema() {
    let (_moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    let configuration = |name: &str, version: &str| {
        eks(
            p,
            "GET",
            &format!("/addons/configuration-schemas?addonName={name}&addonVersion={version}"),
            None,
        )
    };
    let r = configuration("vpc-cni", "v1.20.0-eksbuild.1");
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["addonName"], "vpc-cni");
    assert_eq!(answer["addonVersion"], "v1.20.0-eksbuild.1");
    assert_eq!(
        answer["podIdentityConfiguration"],
        json!([{"serviceAccount": "aws-node",
                "recommendedManagedPolicies": ["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"]}])
    );
    let text = answer["configurationSchema"].as_str().expect("a string");
    let schema: Value = serde_json::from_str(text).expect("the schema is JSON text");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    let props = &schema["properties"];
    for key in ["env", "resources", "tolerations", "nodeAgent", "eniConfig"] {
        assert!(props.get(key).is_some(), "{key}");
    }
    let env = &props["env"];
    assert_eq!(env["type"], "object");
    assert_eq!(env["additionalProperties"], false);
    for name in [
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
        "ENI_CONFIG_LABEL_DEF",
        "ENI_CONFIG_ANNOTATION_DEF",
        "ENABLE_PREFIX_DELEGATION",
        "WARM_ENI_TARGET",
        "WARM_IP_TARGET",
        "MINIMUM_IP_TARGET",
        "WARM_PREFIX_TARGET",
        "AWS_VPC_K8S_CNI_EXTERNALSNAT",
        "ENABLE_POD_ENI",
        "POD_SECURITY_GROUP_ENFORCING_MODE",
        "AWS_VPC_K8S_CNI_LOGLEVEL",
    ] {
        assert_eq!(env["properties"][name]["type"], "string", "{name}");
    }
    assert_eq!(
        env["properties"]["AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"]["enum"],
        json!(["true", "false"])
    );
    assert_eq!(env["properties"]["WARM_ENI_TARGET"]["pattern"], "^[0-9]+$");
    let eni = &props["eniConfig"];
    assert_eq!(eni["properties"]["create"]["type"], "boolean");
    assert_eq!(eni["properties"]["region"]["type"], "string");
    let subnet = &eni["properties"]["subnets"]["additionalProperties"];
    assert_eq!(subnet["properties"]["id"]["type"], "string");
    assert_eq!(subnet["properties"]["securityGroups"]["type"], "array");
    assert_eq!(
        subnet["properties"]["securityGroups"]["items"]["type"],
        "string"
    );

    let older: Value = serde_json::from_str(
        configuration("vpc-cni", "v1.18.6-eksbuild.1").json()["configurationSchema"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(older["properties"].get("eniConfig").is_none());
    assert!(older["properties"].get("nodeAgent").is_some());
    let legacy: Value = serde_json::from_str(
        configuration("vpc-cni", "v1.6.3-eksbuild.2").json()["configurationSchema"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(legacy["properties"].get("nodeAgent").is_none());
    let legacy_env = &legacy["properties"]["env"]["properties"];
    assert!(legacy_env.get("ENABLE_PREFIX_DELEGATION").is_none());
    assert!(legacy_env.get("ENI_CONFIG_LABEL_DEF").is_some());

    let r = configuration("coredns", "v1.11.4-eksbuild.14");
    assert_eq!(r.json()["podIdentityConfiguration"], json!([]));
    let coredns: Value =
        serde_json::from_str(r.json()["configurationSchema"].as_str().unwrap()).unwrap();
    assert_eq!(coredns["properties"]["replicaCount"]["type"], "integer");
    assert_eq!(coredns["properties"]["corefile"]["type"], "string");
    for name in ["kube-proxy", "eks-pod-identity-agent"] {
        let versions = eks(
            p,
            "GET",
            &format!("/addons/supported-versions?addonName={name}"),
            None,
        );
        let v = versions.json()["addons"][0]["addonVersions"][0]["addonVersion"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(configuration(name, &v).status, 200, "{name} {v}");
    }

    let r = configuration("vpc-cni", "v0.0.1-eksbuild.1");
    assert_error(
        &r,
        400,
        "InvalidParameterException",
        json!({"addonName": "vpc-cni", "message": "Addon version specified is not supported"}),
    );
    let r = configuration("no-such-addon", "v1");
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidParameterException")
    );
    let r = eks(
        p,
        "GET",
        "/addons/configuration-schemas?addonName=vpc-cni",
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn cluster_delete_takes_its_addons_and_reset_forgets_them() {
    let (_moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    create_cluster(p, "dc1", Some("1.33"));
    for name in ["vpc-cni", "coredns"] {
        assert_eq!(create(p, "dc1", json!({"addonName": name})).status, 200);
    }
    assert_eq!(eks(p, "DELETE", "/clusters/dc1", None).status, 200);
    // EKS deletes a cluster's add-ons with it; a new cluster of the name has none.
    create_cluster(p, "dc1", Some("1.33"));
    let r = eks(p, "GET", "/clusters/dc1/addons", None);
    assert_eq!(r.json()["addons"], json!([]), "{}", r.body);
    assert_eq!(describe(p, "dc1", "vpc-cni").status, 404);

    assert_eq!(
        create(p, "dc1", json!({"addonName": "vpc-cni"})).status,
        200
    );
    let r = request(p, "POST", "/__proxy/reset", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    create_cluster(p, "dc1", Some("1.33"));
    assert_eq!(
        eks(p, "GET", "/clusters/dc1/addons", None).json()["addons"],
        json!([])
    );
}

#[test]
fn addon_calls_are_faulted_and_seen_by_the_kill_hook() {
    let (_moto, proxy) = proxy_with(&[]);
    let p = proxy.port;
    create_cluster(p, "fc1", Some("1.30"));
    proxy.config(json!({"throttle_fraction": 1.0}));
    let r = create(p, "fc1", json!({"addonName": "vpc-cni"}));
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("ThrottlingException"));
    proxy.config(json!({"throttle_fraction": 0.0, "server_error_fraction": 1.0}));
    let r = eks(p, "GET", "/addons/supported-versions", None);
    assert!(r.status == 500 || r.status == 503, "{}", r.body);
    proxy.config(json!({"server_error_fraction": 0.0}));
    let faults: Vec<Value> = proxy.stats()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fault"].clone())
        .collect();
    assert_eq!(
        faults,
        vec![Value::Null, json!("throttle"), json!("server_error")]
    );
    assert_eq!(
        eks(p, "GET", "/clusters/fc1/addons", None).json()["addons"],
        json!([])
    );

    let mut victim = common::Proc(
        std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep"),
    );
    proxy.config(
        json!({"kill_after_mutating": 1, "kill_op": "CreateAddon", "kill_pid": victim.0.id()}),
    );
    // Neither a read nor another mutating operation counts.
    assert_eq!(describe(p, "fc1", "vpc-cni").status, 404);
    create_cluster(p, "fc2", Some("1.30"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(victim.0.try_wait(), Ok(None)), "killed too early");
    assert_eq!(
        create(p, "fc1", json!({"addonName": "vpc-cni"})).status,
        200
    );
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
    assert_eq!(s["kill"]["op"], "CreateAddon", "{s}");
    assert_eq!(s["killed"], true);
    // The add-on exists although the killed client never saw the answer.
    assert_eq!(status_of(p, "fc1", "vpc-cni"), "ACTIVE");
}

#[test]
fn vpc_cni_applies_the_aws_node_daemonset() {
    let kube = FakeKube::start();
    let (_moto, proxy) = proxy_with(&["--kube-url", &kube.url()]);
    let p = proxy.port;
    create_cluster(p, "kc1", Some("1.31"));
    let before = kube.call("GET", DS_PATH).json();
    let r = create(
        p,
        "kc1",
        json!({
            "addonName": "vpc-cni",
            "addonVersion": "v1.19.2-eksbuild.1",
            "resolveConflicts": "OVERWRITE",
            "configurationValues": json!({"env": {
                "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true",
                "ENI_CONFIG_LABEL_DEF": "topology.kubernetes.io/zone"
            }}).to_string()
        }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(status_of(p, "kc1", "vpc-cni"), "ACTIVE");
    let ds = kube.call("GET", DS_PATH).json();
    let c = aws_node_container(&ds);
    assert_eq!(c["image"], format!("{CNI_IMAGE}:v1.19.2-eksbuild.1"));
    assert_eq!(
        env_value(&c, "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG").as_deref(),
        Some("true")
    );
    assert_eq!(
        env_value(&c, "ENI_CONFIG_LABEL_DEF").as_deref(),
        Some("topology.kubernetes.io/zone")
    );
    assert_eq!(env_value(&c, "WARM_ENI_TARGET").as_deref(), Some("1"));
    assert_eq!(
        env_value(&c, "AWS_VPC_K8S_CNI_EXTERNALSNAT").as_deref(),
        Some("false")
    );
    // The rest of the DaemonSet is untouched.
    assert_eq!(ds["spec"]["selector"], before["spec"]["selector"]);
    assert_eq!(
        c["volumeMounts"],
        aws_node_container(&before)["volumeMounts"]
    );

    let patches: Vec<Value> = kube
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    let patch = &patches[0];
    assert_eq!(patch["path"], DS_PATH);
    assert_eq!(patch["content_type"], "application/apply-patch+yaml");
    let query = patch["query"].as_str().unwrap_or_default();
    assert!(
        query.contains("fieldManager=eks") && query.contains("force=true"),
        "{query}"
    );
    let sent: Value = match &patch["body"] {
        Value::String(s) => serde_json::from_str(s).expect("JSON body"),
        other => other.clone(),
    };
    assert_eq!(sent["apiVersion"], "apps/v1");
    assert_eq!(sent["kind"], "DaemonSet");
    assert_eq!(
        sent["metadata"],
        json!({"name": "aws-node", "namespace": "kube-system"})
    );
    assert!(
        sent["spec"].get("selector").is_none(),
        "an existing DaemonSet gets a partial apply"
    );

    let r = update(
        p,
        "kc1",
        "vpc-cni",
        json!({
            "addonVersion": "v1.20.0-eksbuild.1",
            "configurationValues": json!({"env": {
                "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true",
                "ENI_CONFIG_LABEL_DEF": "topology.kubernetes.io/zone",
                "WARM_ENI_TARGET": "3"
            }}).to_string()
        }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["update"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        describe_update(p, "kc1", &id, "vpc-cni").json()["update"]["status"],
        "Successful"
    );
    let c = aws_node_container(&kube.call("GET", DS_PATH).json());
    assert_eq!(c["image"], format!("{CNI_IMAGE}:v1.20.0-eksbuild.1"));
    assert_eq!(env_value(&c, "WARM_ENI_TARGET").as_deref(), Some("3"));
    assert_eq!(
        env_value(&c, "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG").as_deref(),
        Some("true")
    );
    let last = kube
        .requests()
        .into_iter()
        .rfind(|r| r["method"] == "PATCH")
        .expect("the update's apply");
    let query = last["query"].as_str().unwrap_or_default();
    assert!(
        query.contains("fieldManager=eks") && !query.contains("force"),
        "NONE: {query}"
    );

    // Other add-ons have no Kubernetes side.
    let writes = kube.requests().len();
    assert_eq!(
        create(p, "kc1", json!({"addonName": "coredns"})).status,
        200
    );
    assert_eq!(kube.requests().len(), writes);
}

#[test]
fn vpc_cni_creates_a_missing_daemonset_and_deletes_it_unless_preserved() {
    let kube = FakeKube::start();
    let (_moto, proxy) = proxy_with(&[]);
    proxy.config(json!({"kube_url": kube.url()}));
    let p = proxy.port;
    create_cluster(p, "mc1", Some("1.30"));
    // A cluster created with bootstrapSelfManagedAddons=false has no aws-node.
    assert_eq!(kube.call("DELETE", DS_PATH).status, 200);
    assert_eq!(kube.call("GET", DS_PATH).status, 404);

    let r = create(p, "mc1", json!({"addonName": "vpc-cni"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(status_of(p, "mc1", "vpc-cni"), "ACTIVE");
    let r = kube.call("GET", DS_PATH);
    assert_eq!(r.status, 200, "{}", r.body);
    let ds = r.json();
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        json!({"k8s-app": "aws-node"})
    );
    assert_eq!(
        ds["spec"]["template"]["metadata"]["labels"]["k8s-app"],
        "aws-node"
    );
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["serviceAccountName"], "aws-node");
    assert_eq!(spec["hostNetwork"], true);
    let c = aws_node_container(&ds);
    // The default for 1.30.
    assert_eq!(c["image"], format!("{CNI_IMAGE}:v1.19.2-eksbuild.1"));
    assert_eq!(
        env_value(&c, "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG").as_deref(),
        Some("false")
    );
    assert_eq!(env_value(&c, "ENI_CONFIG_LABEL_DEF"), None);
    assert_eq!(
        spec["initContainers"][0]["image"],
        format!("{CNI_IMAGE}-init:v1.19.2-eksbuild.1")
    );

    let r = delete(p, "mc1", "vpc-cni", Some(true));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(describe(p, "mc1", "vpc-cni").status, 404);
    assert_eq!(
        kube.call("GET", DS_PATH).status,
        200,
        "preserve=true keeps it"
    );

    assert_eq!(
        create(p, "mc1", json!({"addonName": "vpc-cni"})).status,
        200
    );
    assert_eq!(delete(p, "mc1", "vpc-cni", Some(false)).status, 200);
    assert_eq!(
        kube.call("GET", DS_PATH).status,
        404,
        "preserve=false deletes it"
    );
    assert!(kube
        .requests()
        .iter()
        .any(|r| r["method"] == "DELETE" && r["path"] == DS_PATH && r["code"] == 200));
    // Deleting an add-on whose DaemonSet is already gone is fine.
    assert_eq!(
        create(p, "mc1", json!({"addonName": "vpc-cni"})).status,
        200
    );
    assert_eq!(kube.call("DELETE", DS_PATH).status, 200);
    assert_eq!(delete(p, "mc1", "vpc-cni", None).status, 200);
    assert_eq!(describe(p, "mc1", "vpc-cni").status, 404);
}

/// A Kubernetes API server whose aws-node image belongs to another field manager: an apply
/// setting the image without force gets the real server's 409 conflict `Status`.
fn conflicting_kube() -> ScriptedServer {
    ScriptedServer::start(|req| {
        if req.method == "GET" {
            return (200, json!({"kind": "DaemonSet"}).to_string());
        }
        let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let sets_image = body
            .pointer("/spec/template/spec/containers/0/image")
            .is_some();
        if req.method == "PATCH" && sets_image && !req.query.contains("force=true") {
            let field = ".spec.template.spec.containers[name=\"aws-node\"].image";
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: {field}"),
                "reason": "Conflict",
                "details": {"name": "aws-node", "group": "apps", "kind": "daemonsets",
                            "causes": [{"type": "FieldManagerConflict",
                                        "message": "conflict with \"kubectl-edit\" using apps/v1",
                                        "field": field}]},
                "code": 409
            });
            return (409, status.to_string());
        }
        (200, req.body.clone())
    })
}

#[test]
fn field_manager_conflicts_fail_or_are_resolved_as_eks_does() {
    let kube = conflicting_kube();
    let (_moto, proxy) = proxy_with(&["--kube-url", &kube.url(), "--addon-create-ms", "300"]);
    let p = proxy.port;
    for cluster in ["cc1", "cc2", "cc3"] {
        create_cluster(p, cluster, Some("1.31"));
    }

    // NONE, and PRESERVE (which on create acts as NONE): CREATE_FAILED once the window ends.
    for (cluster, resolve) in [("cc1", "NONE"), ("cc2", "PRESERVE")] {
        let r = create(
            p,
            cluster,
            json!({"addonName": "vpc-cni", "resolveConflicts": resolve}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["addon"]["status"], "CREATING");
    }
    std::thread::sleep(Duration::from_millis(450));
    for cluster in ["cc1", "cc2"] {
        let a = describe(p, cluster, "vpc-cni").json()["addon"].clone();
        assert_eq!(a["status"], "CREATE_FAILED", "{a}");
        assert_eq!(
            a["health"]["issues"],
            json!([{"code": "ConfigurationConflict", "message": CONFLICT_MESSAGE, "resourceIds": []}])
        );
    }
    assert_error(
        &update(
            p,
            "cc1",
            "vpc-cni",
            json!({"resolveConflicts": "OVERWRITE"}),
        ),
        409,
        "ResourceInUseException",
        json!({"clusterName": "cc1", "addonName": "vpc-cni",
               "message": "Addon vpc-cni cannot be updated as it is currently in CREATE_FAILED state"}),
    );

    // OVERWRITE forces the apply.
    let r = create(
        p,
        "cc3",
        json!({"addonName": "vpc-cni", "resolveConflicts": "OVERWRITE"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(status_of(p, "cc3", "vpc-cni"), "ACTIVE");
    let last = kube.requests().pop().expect("a request");
    assert_eq!(last.method, "PATCH");
    assert_eq!(last.query, "fieldManager=eks&force=true");
    assert_eq!(last.content_type, "application/apply-patch+yaml");

    // PRESERVE on update: the image stays the other manager's, the rest is applied.
    let seen = kube.requests().len();
    let config = json!({"env": {"WARM_ENI_TARGET": "5"}}).to_string();
    let r = update(
        p,
        "cc3",
        "vpc-cni",
        json!({"resolveConflicts": "PRESERVE", "configurationValues": config}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["update"]["id"].as_str().unwrap().to_string();
    let patches: Vec<Recorded> = kube.requests()[seen..]
        .iter()
        .filter(|r| r.method == "PATCH")
        .cloned()
        .collect();
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert_eq!(patches[1].query, "fieldManager=eks");
    let retried: Value = serde_json::from_str(&patches[1].body).unwrap();
    let c = &retried["spec"]["template"]["spec"]["containers"][0];
    assert!(c.get("image").is_none(), "{retried}");
    assert_eq!(env_value(c, "WARM_ENI_TARGET").as_deref(), Some("5"));
    let u = describe_update(p, "cc3", &id, "vpc-cni").json()["update"].clone();
    assert_eq!(u["status"], "Successful", "{u}");
    assert_eq!(
        describe(p, "cc3", "vpc-cni").json()["addon"]["configurationValues"],
        config
    );

    // NONE on update: the update fails, the add-on stays as it was.
    let r = update(
        p,
        "cc3",
        "vpc-cni",
        json!({"addonVersion": "v1.20.0-eksbuild.1", "resolveConflicts": "NONE"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["update"]["id"].as_str().unwrap().to_string();
    let u = describe_update(p, "cc3", &id, "vpc-cni").json()["update"].clone();
    assert_eq!(u["status"], "Failed", "{u}");
    assert_eq!(
        u["errors"],
        json!([{"errorCode": "ConfigurationConflict", "errorMessage": CONFLICT_MESSAGE, "resourceIds": []}])
    );
    let a = describe(p, "cc3", "vpc-cni").json()["addon"].clone();
    assert_eq!(a["status"], "ACTIVE");
    assert_eq!(a["addonVersion"], "v1.19.6-eksbuild.1");

    // An API server that cannot be reached.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    proxy.config(json!({"kube_url": dead_url, "addon_create_ms": 0}));
    create_cluster(p, "cc4", Some("1.31"));
    assert_eq!(
        create(p, "cc4", json!({"addonName": "vpc-cni"})).status,
        200
    );
    let a = describe(p, "cc4", "vpc-cni").json()["addon"].clone();
    assert_eq!(a["status"], "CREATE_FAILED");
    assert_eq!(
        a["health"]["issues"][0]["code"], "ClusterUnreachable",
        "{a}"
    );
}

fn associations(p: u16, cluster: &str, query: &str) -> Vec<Value> {
    let r = eks(
        p,
        "GET",
        &format!("/clusters/{cluster}/pod-identity-associations{query}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["associations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn restarted_at(kube: &FakeKube) -> Value {
    let ds = kube.call("GET", DS_PATH).json();
    ds["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].clone()
}

/// Pod Identity associations an add-on owns (EKS user guide, `add-ons-iam.adoc`): made with
/// CreateAddon, listed by ARN in DescribeAddon, shown by ListPodIdentityAssociations (owner:
/// the add-on) and DescribePodIdentityAssociation (role); an UpdateAddon's list replaces
/// them and, when it changes them, restarts the add-on's pods (a new pod template
/// annotation), one that changes nothing restarts nothing; `[]` removes them; a deleted
/// add-on takes them along, unless preserved.
#[test]
fn an_addon_owns_its_pod_identity_associations_and_restarts_its_pods_when_they_change() {
    let kube = FakeKube::start();
    let (_moto, proxy) = proxy_with(&[]);
    proxy.config(json!({"kube_url": kube.url(), "addon_create_ms": 0, "addon_update_ms": 0}));
    let p = proxy.port;
    create_cluster(p, "pi1", Some("1.30"));
    let cni = "arn:aws:iam::123456789012:role/cni";
    let r = create(
        p,
        "pi1",
        json!({"addonName": "vpc-cni", "podIdentityAssociations": [
            {"serviceAccount": "aws-node", "roleArn": cni}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let addon = describe(p, "pi1", "vpc-cni").json()["addon"].clone();
    let arns = addon["podIdentityAssociations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(arns.len(), 1, "{addon}");
    let arn = arns[0].as_str().unwrap_or_default().to_string();
    assert!(
        arn.starts_with("arn:aws:eks:us-east-1:123456789012:podidentityassociation/pi1/a-"),
        "{arn}"
    );
    let listed = associations(p, "pi1", "?namespace=kube-system&serviceAccount=aws-node");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["associationArn"], json!(arn));
    assert_eq!(listed[0]["ownerArn"], addon["addonArn"]);
    assert!(associations(p, "pi1", "?serviceAccount=other").is_empty());
    let id = listed[0]["associationId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let one = eks(
        p,
        "GET",
        &format!("/clusters/pi1/pod-identity-associations/{id}"),
        None,
    );
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["association"]["roleArn"], cni);
    assert_eq!(one.json()["association"]["namespace"], "kube-system");
    let missing = eks(
        p,
        "GET",
        "/clusters/pi1/pod-identity-associations/a-nope",
        None,
    );
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(
        restarted_at(&kube),
        Value::Null,
        "a create restarts nothing"
    );

    // The same list again: no change, no restart.
    let same = json!({"podIdentityAssociations": [{"serviceAccount": "aws-node", "roleArn": cni}]});
    assert_eq!(update(p, "pi1", "vpc-cni", same).status, 200);
    assert_eq!(restarted_at(&kube), Value::Null);
    // Another role: the association keeps its id, the pods are restarted.
    let other = "arn:aws:iam::123456789012:role/cni2";
    let r = update(
        p,
        "pi1",
        "vpc-cni",
        json!({"podIdentityAssociations": [{"serviceAccount": "aws-node", "roleArn": other}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(restarted_at(&kube), Value::Null, "restarted");
    let listed = associations(p, "pi1", "");
    assert_eq!(listed[0]["associationId"], json!(id));
    let one = eks(
        p,
        "GET",
        &format!("/clusters/pi1/pod-identity-associations/{id}"),
        None,
    );
    assert_eq!(one.json()["association"]["roleArn"], other);
    // A bad role ARN is refused with nothing changed.
    let bad = update(
        p,
        "pi1",
        "vpc-cni",
        json!({"podIdentityAssociations": [{"serviceAccount": "aws-node", "roleArn": "cni"}]}),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(associations(p, "pi1", "").len(), 1);
    // `[]` removes them.
    assert_eq!(
        update(p, "pi1", "vpc-cni", json!({"podIdentityAssociations": []})).status,
        200
    );
    assert!(associations(p, "pi1", "").is_empty());
    assert!(describe(p, "pi1", "vpc-cni").json()["addon"]
        .get("podIdentityAssociations")
        .is_none());

    // Deleted with the add-on, unless preserved (then they stay, owned by nobody).
    let with = json!({"podIdentityAssociations": [{"serviceAccount": "aws-node", "roleArn": cni}]});
    assert_eq!(update(p, "pi1", "vpc-cni", with.clone()).status, 200);
    assert_eq!(delete(p, "pi1", "vpc-cni", Some(true)).status, 200);
    let kept = associations(p, "pi1", "");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].get("ownerArn").is_none(), "{kept:?}");
    let mut again = with;
    again["addonName"] = json!("eks-pod-identity-agent");
    again["podIdentityAssociations"][0]["serviceAccount"] = json!("x");
    assert_eq!(create(p, "pi1", again).status, 200);
    assert_eq!(
        delete(p, "pi1", "eks-pod-identity-agent", Some(false)).status,
        200
    );
    assert_eq!(
        associations(p, "pi1", "").len(),
        1,
        "the agent's went with it"
    );
}

fn irsa_annotation(kube: &FakeKube) -> Value {
    let sa = kube.call(
        "GET",
        "/api/v1/namespaces/kube-system/serviceaccounts/aws-node",
    );
    sa.json()["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].clone()
}

/// IRSA: the add-on's `serviceAccountRoleArn` becomes its service account's
/// `eks.amazonaws.com/role-arn` (none is written for an add-on without one); a new role
/// replaces it, and EKS ignores it while the cluster has the Pod Identity Agent and the
/// add-on associations, so the annotation goes.
#[test]
fn the_service_account_role_annotates_the_service_account_unless_pod_identity_wins() {
    let kube = FakeKube::start();
    let (_moto, proxy) = proxy_with(&[]);
    proxy.config(json!({"kube_url": kube.url(), "addon_create_ms": 0, "addon_update_ms": 0}));
    let p = proxy.port;
    create_cluster(p, "ir1", Some("1.30"));
    assert_eq!(
        create(p, "ir1", json!({"addonName": "vpc-cni"})).status,
        200
    );
    assert_eq!(irsa_annotation(&kube), Value::Null);
    let (one, two) = (
        "arn:aws:iam::123456789012:role/irsa",
        "arn:aws:iam::123456789012:role/irsa2",
    );
    assert_eq!(
        update(p, "ir1", "vpc-cni", json!({"serviceAccountRoleArn": one})).status,
        200
    );
    assert_eq!(irsa_annotation(&kube), one);
    assert_eq!(
        update(p, "ir1", "vpc-cni", json!({"serviceAccountRoleArn": two})).status,
        200
    );
    assert_eq!(irsa_annotation(&kube), two);
    assert_eq!(
        create(p, "ir1", json!({"addonName": "eks-pod-identity-agent"})).status,
        200
    );
    let r = update(
        p,
        "ir1",
        "vpc-cni",
        json!({"podIdentityAssociations": [{"serviceAccount": "aws-node", "roleArn": "arn:aws:iam::123456789012:role/cni"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        irsa_annotation(&kube),
        Value::Null,
        "ignored beside the association"
    );
    assert_eq!(
        describe(p, "ir1", "vpc-cni").json()["addon"]["serviceAccountRoleArn"],
        two,
        "the add-on keeps it"
    );
}
