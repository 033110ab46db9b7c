//! REST behaviour of the fake checked over real HTTP against the built-in seed.

mod common;

use common::{env_of, names, request, rv, start, DS, ENI, NODE_A};
use serde_json::{json, Value};

const SMP: &str = "application/strategic-merge-patch+json";
const MERGE: &str = "application/merge-patch+json";
const JSONP: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

fn eni(name: &str, subnet: &str) -> Value {
    json!({"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
        "metadata": {"name": name}, "spec": {"securityGroups": ["sg-1"], "subnet": subnet}})
}

#[test]
fn discovery_documents() {
    let f = start();
    assert_eq!(f.get("/version").body["gitVersion"], "v1.32.3-eks-4096722");
    assert_eq!(f.get("/api").body["versions"], json!(["v1"]));
    let groups = f.get("/apis").body;
    let group_names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        group_names,
        [
            "apps",
            "policy",
            "crd.k8s.amazonaws.com",
            "apiextensions.k8s.io",
            "vpcresources.k8s.aws",
            "karpenter.k8s.aws",
            "eks.amazonaws.com",
            "karpenter.sh"
        ]
    );
    let core = f.get("/api/v1").body;
    let nodes = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "nodes")
        .unwrap()
        .clone();
    assert_eq!(nodes["namespaced"], false);
    assert_eq!(nodes["kind"], "Node");
    assert_eq!(nodes["shortNames"], json!(["no"]));
    let crd = f.get("/apis/crd.k8s.amazonaws.com/v1alpha1").body;
    assert_eq!(crd["groupVersion"], "crd.k8s.amazonaws.com/v1alpha1");
    assert_eq!(
        crd["resources"][0],
        json!({"name": "eniconfigs", "singularName": "eniconfig", "namespaced": false,
            "kind": "ENIConfig", "verbs": ["create", "delete", "deletecollection", "get", "list",
            "patch", "update", "watch"]})
    );
    // Aggregated discovery requests get the legacy document, labelled plain JSON.
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let r = request(f.addr, "GET", "/apis", &[("Accept", accept)], "");
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.body["kind"], "APIGroupList");
    assert_eq!(f.get("/openapi/v2").code, 404);
    let seeded_crd = f.get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/eniconfigs.crd.k8s.amazonaws.com",
    );
    assert_eq!(seeded_crd.body["spec"]["names"]["kind"], "ENIConfig");
    // The SecurityGroupPolicy CRD EKS installs with the VPC resource controller: namespaced.
    let sgp = f.get("/apis/vpcresources.k8s.aws/v1beta1").body;
    assert_eq!(
        sgp["resources"][0],
        json!({"name": "securitygrouppolicies", "singularName": "securitygrouppolicy",
            "namespaced": true, "kind": "SecurityGroupPolicy", "shortNames": ["sgp"],
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
            "watch"]})
    );
    let seeded_sgp = f.get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/securitygrouppolicies.vpcresources.k8s.aws",
    );
    assert_eq!(seeded_sgp.body["spec"]["scope"], "Namespaced");
}

#[test]
fn get_and_list_with_selectors() {
    let f = start();
    f.seed_cluster();
    let ds = f.get(DS);
    assert_eq!(ds.code, 200);
    assert_eq!(ds.body["kind"], "DaemonSet");
    assert_eq!(
        ds.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.3-eksbuild.1"
    );
    let list = |q: &str| {
        let r = f.get(&format!("/api/v1/namespaces/kube-system/pods?{q}"));
        assert_eq!(r.code, 200, "{q}: {}", r.body);
        names(&r.body)
    };
    assert_eq!(
        list("labelSelector=k8s-app%3Dkube-dns"),
        ["coredns-aaaa", "coredns-bbbb"]
    );
    assert_eq!(
        list("labelSelector=k8s-app+in+(kube-proxy,%20aws-node)"),
        [
            "aws-node-7xk2p",
            "aws-node-q9rtm",
            "kube-proxy-5bw8d",
            "kube-proxy-hz4lc"
        ]
    );
    assert_eq!(
        list("labelSelector=k8s-app!%3Dkube-dns,!app.kubernetes.io/name"),
        ["kube-proxy-5bw8d", "kube-proxy-hz4lc"]
    );
    assert_eq!(
        list("labelSelector=pod-template-hash,k8s-app==kube-dns").len(),
        2
    );
    assert_eq!(
        list("fieldSelector=metadata.name%3Dcoredns-bbbb"),
        ["coredns-bbbb"]
    );
    assert_eq!(
        list("fieldSelector=spec.hostNetwork%3Dfalse,spec.nodeName%3Dip-192-168-0-70.us-west-2.compute.internal"),
        ["coredns-aaaa"]
    );
    // Paging with limit/continue.
    let page = f.get("/api/v1/namespaces/kube-system/pods?limit=4").body;
    assert_eq!(names(&page).len(), 4);
    assert_eq!(page["metadata"]["remainingItemCount"], 2);
    let token = page["metadata"]["continue"].as_str().unwrap();
    assert_eq!(
        list(&format!("limit=4&continue={token}")),
        ["kube-proxy-5bw8d", "kube-proxy-hz4lc"]
    );

    let all = f.get("/api/v1/pods?labelSelector=k8s-app").body;
    assert_eq!(all["kind"], "PodList");
    assert_eq!(all["apiVersion"], "v1");
    assert!(all["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert_eq!(names(&all).len(), 6);
    // Built-in list items carry no type fields, like the real server's JSON.
    assert!(all["items"][0].get("kind").is_none());
    let nodes = f
        .get("/api/v1/nodes?labelSelector=topology.kubernetes.io/zone%3Dus-west-2a")
        .body;
    assert_eq!(names(&nodes), [NODE_A]);
    assert_eq!(
        nodes["items"][0]["status"]["addresses"][0]["address"],
        "192.168.0.70"
    );

    let bad = f.get("/api/v1/pods?labelSelector=a+in+(b");
    assert_eq!(
        (bad.code, bad.body["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    let bad = f.get("/api/v1/pods?fieldSelector=spec.bogus%3D1");
    assert_eq!(bad.body["message"], "field label not supported: spec.bogus");
    // kubectl's Table request.
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let t = request(f.addr, "GET", "/api/v1/nodes", &[("Accept", accept)], "").body;
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"][1]["cells"][0], NODE_A);
    assert_eq!(t["rows"][1]["object"]["kind"], "PartialObjectMetadata");
}

#[test]
fn create_sets_metadata_and_rejects_duplicates() {
    let f = start();
    let before = rv(&f.get(ENI).body);
    let created = f.post(ENI, &eni("us-west-2a", "subnet-a"));
    assert_eq!(created.code, 201, "{}", created.body);
    let m = &created.body["metadata"];
    assert_eq!(m["uid"].as_str().unwrap().len(), 36);
    assert!(m["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(m["generation"], 1);
    assert!(rv(&created.body) > before);
    let dup = f.post(ENI, &eni("us-west-2a", "subnet-b"));
    assert_eq!(
        dup.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "eniconfigs.crd.k8s.amazonaws.com \"us-west-2a\" already exists",
            "reason": "AlreadyExists",
            "details": {"name": "us-west-2a", "group": "crd.k8s.amazonaws.com", "kind": "eniconfigs"},
            "code": 409})
    );
    let dry = f.post(&format!("{ENI}?dryRun=All"), &eni("us-west-2b", "subnet-b"));
    assert_eq!(dry.code, 201);
    assert_eq!(
        f.get(&format!("{ENI}/us-west-2b")).code,
        404,
        "dry run must not store"
    );
    // Namespaced objects need their namespace; names are required.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let missing_ns = f.post("/api/v1/namespaces/nope/configmaps", &cm);
    assert_eq!(missing_ns.body["message"], "namespaces \"nope\" not found");
    let ok = f.post("/api/v1/namespaces/default/configmaps", &cm);
    assert_eq!(ok.body["metadata"]["namespace"], "default");
    let unnamed = f.post(ENI, &json!({"spec": {}}));
    assert_eq!(unnamed.code, 422);
    assert_eq!(
        unnamed.body["message"],
        "ENIConfig.crd.k8s.amazonaws.com \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
}

#[test]
fn replace_requires_current_resource_version() {
    let f = start();
    let ds = f.get(DS).body;
    let mut edited = ds.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("example/cni:v2");
    let ok = f.put(DS, &edited);
    assert_eq!(ok.code, 200, "{}", ok.body);
    assert!(rv(&ok.body) > rv(&ds));
    assert_eq!(
        ok.body["metadata"]["generation"], 2,
        "spec change bumps generation"
    );
    assert_eq!(ok.body["metadata"]["uid"], ds["metadata"]["uid"]);
    // The same (now stale) object again.
    let stale = f.put(DS, &edited);
    assert_eq!(
        stale.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Operation cannot be fulfilled on daemonsets.apps \"aws-node\": the object has been modified; please apply your changes to the latest version and try again",
            "reason": "Conflict",
            "details": {"name": "aws-node", "group": "apps", "kind": "daemonsets"}, "code": 409})
    );
    // A label-only change keeps the generation; status is owned by the /status subresource.
    let mut labelled = ok.body.clone();
    labelled["metadata"]["labels"]["extra"] = json!("yes");
    labelled["status"]["numberReady"] = json!(99);
    let l = f.put(DS, &labelled).body;
    assert_eq!(l["metadata"]["generation"], 2);
    // The seed's status (no nodes yet), not the 99 the PUT sent.
    assert_eq!(l["status"]["numberReady"], 0);
    let st = f.patch(
        &format!("{DS}/status"),
        MERGE,
        &json!({"status": {"numberReady": 1}}),
    );
    assert_eq!(st.body["status"]["numberReady"], 1);
    let mut gone = eni("nope", "s");
    gone["metadata"]["resourceVersion"] = json!("1");
    assert_eq!(f.put(&format!("{ENI}/nope"), &gone).code, 404);
    // Custom resources cannot be updated unconditionally.
    f.post(ENI, &eni("a", "s"));
    let unconditional = f.put(&format!("{ENI}/a"), &eni("a", "t"));
    assert_eq!(unconditional.code, 422);
}

#[test]
fn not_found_status_shape() {
    let f = start();
    let core = f.get("/api/v1/namespaces/kube-system/pods/nope");
    assert_eq!(
        core.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"nope\" not found", "reason": "NotFound",
            "details": {"name": "nope", "kind": "pods"}, "code": 404})
    );
    assert_eq!(core.code, 404);
    let e = f.get(&format!("{ENI}/us-west-2a")).body;
    assert_eq!(
        e["message"],
        "eniconfigs.crd.k8s.amazonaws.com \"us-west-2a\" not found"
    );
    assert_eq!(
        e["details"],
        json!({"name": "us-west-2a", "group": "crd.k8s.amazonaws.com", "kind": "eniconfigs"})
    );
    assert_eq!(f.delete(DS).code, 200);
    let ds = f.get(DS).body;
    assert_eq!(ds["message"], "daemonsets.apps \"aws-node\" not found");
    assert_eq!(ds["reason"], "NotFound");
    let unknown = f.get("/apis/apps/v1/namespaces/kube-system/statefulsets");
    assert_eq!(unknown.code, 404);
    assert_eq!(
        unknown.body["message"],
        "the server could not find the requested resource"
    );
    let bad_method = f.post(DS, &json!({}));
    assert_eq!(
        (bad_method.code, bad_method.body["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
}

#[test]
fn strategic_merge_env_by_name_keeps_image_and_other_env() {
    let f = start();
    let before = f.get(DS).body;
    // The shape `kubectl set env` sends, ordering directives included.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "aws-node"}],
        "containers": [{"name": "aws-node",
            "$setElementOrder/env": [{"name": "AWS_VPC_K8S_CNI_LOGLEVEL"}, {"name": "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"}],
            "env": [{"name": "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "value": "true"},
                    {"name": "AWS_VPC_ENI_MTU", "value": "1500"}]}]}}}});
    let r = f.patch(DS, SMP, &patch);
    assert_eq!(r.code, 200, "{}", r.body);
    let after = f.get(DS).body;
    let c0 = |v: &Value| v["spec"]["template"]["spec"]["containers"][0].clone();
    assert_eq!(c0(&after)["image"], c0(&before)["image"]);
    assert_eq!(c0(&after)["volumeMounts"], c0(&before)["volumeMounts"]);
    assert_eq!(
        after["spec"]["template"]["spec"]["initContainers"],
        before["spec"]["template"]["spec"]["initContainers"]
    );
    let mut expected = env_of(&before);
    for (k, v) in &mut expected {
        if k == "AWS_VPC_ENI_MTU" {
            *v = "1500".into();
        }
    }
    expected.push(("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG".into(), "true".into()));
    assert_eq!(env_of(&after), expected);
    assert_eq!(after["metadata"]["generation"], 2);
    assert!(after.to_string().find("$setElementOrder").is_none());
}

#[test]
fn strategic_merge_patch_delete_directive() {
    let f = start();
    let before = env_of(&f.get(DS).body);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "aws-node",
        "env": [{"name": "WARM_ENI_TARGET", "$patch": "delete"}]}]}}}});
    let after = env_of(&f.patch(DS, SMP, &patch).body);
    let expected: Vec<_> = before
        .into_iter()
        .filter(|(k, _)| k != "WARM_ENI_TARGET")
        .collect();
    assert_eq!(after, expected);
    // Strategic merge patch is refused for custom resources, as on the real server.
    f.post(ENI, &eni("a", "s"));
    let r = f.patch(&format!("{ENI}/a"), SMP, &json!({"spec": {"subnet": "t"}}));
    assert_eq!(
        (r.code, r.body["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
}

#[test]
fn json_patch_and_merge_patch() {
    let f = start();
    f.seed_cluster();
    let node = format!("/api/v1/nodes/{NODE_A}");
    let jp = json!([{"op": "add", "path": "/metadata/annotations/k8s.amazonaws.com~1eniConfig", "value": "us-west-2a"},
                    {"op": "test", "path": "/metadata/name", "value": NODE_A}]);
    let r = f.patch(&node, JSONP, &jp);
    assert_eq!(
        r.body["metadata"]["annotations"]["k8s.amazonaws.com/eniConfig"],
        "us-west-2a"
    );
    let failed = f.patch(
        &node,
        JSONP,
        &json!([{"op": "test", "path": "/metadata/name", "value": "x"}]),
    );
    assert_eq!(failed.code, 422);
    // Merge patch: set, then null deletes.
    let m = f.patch(&node, MERGE, &json!({"metadata": {"labels": {"a": "b"}, "annotations": {"k8s.amazonaws.com/eniConfig": null}}}));
    assert_eq!(m.body["metadata"]["labels"]["a"], "b");
    assert_eq!(
        m.body["metadata"]["labels"]["topology.kubernetes.io/zone"],
        "us-west-2a"
    );
    assert!(m.body["metadata"]["annotations"]
        .get("k8s.amazonaws.com/eniConfig")
        .is_none());
    // A resourceVersion inside a patch is a precondition.
    let stale = f.patch(
        &node,
        MERGE,
        &json!({"metadata": {"resourceVersion": "1", "labels": {"a": "c"}}}),
    );
    assert_eq!(stale.code, 409);
    assert_eq!(f.patch("/api/v1/nodes/nope", MERGE, &json!({})).code, 404);
    let garbage = f.patch(&node, MERGE, &json!("{not json"));
    assert_eq!(garbage.code, 400);
}

#[test]
fn server_side_apply_creates_then_updates() {
    let f = start();
    let yaml = "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: us-west-2a\nspec:\n  securityGroups: [sg-1]\n  subnet: subnet-a\n";
    let path = format!("{ENI}/us-west-2a");
    let no_manager = f.patch(&path, APPLY, &json!(yaml));
    assert_eq!(no_manager.code, 422);
    assert_eq!(
        no_manager.body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let created = f.patch(
        &format!("{path}?fieldManager=eksnet&force=true"),
        APPLY,
        &json!(yaml),
    );
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(created.body["spec"]["subnet"], "subnet-a");
    let updated = f.patch(
        &format!("{path}?fieldManager=eksnet"),
        APPLY,
        &json!(yaml.replace("subnet-a", "subnet-b")),
    );
    assert_eq!(updated.code, 200);
    assert_eq!(
        updated.body["spec"],
        json!({"securityGroups": ["sg-1"], "subnet": "subnet-b"})
    );
    assert_eq!(updated.body["metadata"]["generation"], 2);
    assert_eq!(
        updated.body["metadata"]["uid"],
        created.body["metadata"]["uid"]
    );
    assert!(rv(&updated.body) > rv(&created.body));
    // Re-applying the same config is a no-op that keeps the resourceVersion.
    let again = f.patch(
        &format!("{path}?fieldManager=eksnet"),
        APPLY,
        &json!(yaml.replace("subnet-a", "subnet-b")),
    );
    assert_eq!(rv(&again.body), rv(&updated.body));
    let force_on_merge = f.patch(&format!("{path}?force=true"), MERGE, &json!({}));
    assert_eq!(force_on_merge.code, 422);
}

#[test]
fn resource_version_increases_on_every_write() {
    let f = start();
    f.seed_cluster();
    let mut last = rv(&f.get("/api/v1/nodes").body);
    let writes: Vec<Box<dyn Fn() -> common::Resp + '_>> = vec![
        Box::new(|| f.post(ENI, &eni("x", "s1"))),
        Box::new(|| {
            f.patch(
                &format!("{ENI}/x"),
                MERGE,
                &json!({"spec": {"subnet": "s2"}}),
            )
        }),
        Box::new(|| {
            f.patch(
                &format!("/api/v1/nodes/{NODE_A}"),
                MERGE,
                &json!({"metadata": {"labels": {"l": "1"}}}),
            )
        }),
        Box::new(|| f.delete(&format!("{ENI}/x"))),
    ];
    for w in writes {
        let code = w().code;
        assert!(code < 300, "write failed: {code}");
        let now = rv(&f.get("/api/v1/namespaces").body);
        assert!(now > last, "{now} > {last}");
        last = now;
    }
    // Reads and no-op patches leave it alone.
    f.patch(
        &format!("/api/v1/nodes/{NODE_A}"),
        MERGE,
        &json!({"metadata": {"labels": {"l": "1"}}}),
    );
    f.get(DS);
    assert_eq!(rv(&f.get("/api/v1/namespaces").body), last);
}

#[test]
fn delete_semantics() {
    let f = start();
    f.seed_cluster();
    let cm = "/api/v1/namespaces/kube-system/configmaps/amazon-vpc-cni";
    let st = f.delete(cm).body;
    assert_eq!(st["status"], "Success");
    assert_eq!(st["details"]["kind"], "configmaps");
    assert_eq!(f.delete(cm).code, 404);
    f.post(ENI, &eni("a", "s"));
    let gone = f.delete(&format!("{ENI}/a"));
    assert_eq!(
        gone.body["kind"], "ENIConfig",
        "custom resources answer with the object"
    );
    let pod = "/api/v1/namespaces/kube-system/pods/coredns-aaaa";
    let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": "1"}});
    let cond = request(
        f.addr,
        "DELETE",
        pod,
        &[("Content-Type", "application/json")],
        &body.to_string(),
    );
    assert_eq!(cond.code, 409);
    assert!(cond.body["message"]
        .as_str()
        .unwrap()
        .contains("Precondition failed"));
    let coll = f.delete("/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-dns");
    assert_eq!(names(&coll.body), ["coredns-aaaa", "coredns-bbbb"]);
    assert_eq!(names(&f.get("/api/v1/pods").body).len(), 4);
}

#[test]
fn request_log_records_order_and_reset_restores_seed() {
    let f = start();
    f.get(DS);
    f.post(ENI, &eni("us-west-2a", "s"));
    f.patch(DS, SMP, &json!({"metadata": {"labels": {"x": "y"}}}));
    f.get("/api/v1/pods?labelSelector=k8s-app%3Dkube-dns");
    let log = f.requests();
    let summary: Vec<(String, String, String, String)> = log
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("method"), s("path"), s("query"), s("content_type"))
        })
        .collect();
    let own = |m: &str, p: &str, q: &str, c: &str| {
        (m.to_string(), p.to_string(), q.to_string(), c.to_string())
    };
    assert_eq!(
        summary,
        [
            own("GET", DS, "", ""),
            own("POST", ENI, "", "application/json"),
            own("PATCH", DS, "", SMP),
            own(
                "GET",
                "/api/v1/pods",
                "labelSelector=k8s-app%3Dkube-dns",
                ""
            ),
        ]
    );
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let nanos: Vec<u64> = log
        .iter()
        .map(|e| e["unix_nanos"].as_u64().unwrap())
        .collect();
    assert!(nanos.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(log[1]["code"], 201);
    assert_eq!(log[2]["body"]["metadata"]["labels"]["x"], "y");

    assert_eq!(request(f.addr, "POST", "/__fake/reset", &[], "").code, 200);
    assert!(f.requests().is_empty(), "reset clears the log");
    assert_eq!(f.get(&format!("{ENI}/us-west-2a")).code, 404);
    assert!(f.get(DS).body["metadata"]["labels"].get("x").is_none());
}

#[test]
fn seed_endpoint_adds_objects() {
    let f = start();
    let seed = json!({"objects": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n3",
            "labels": {"topology.kubernetes.io/zone": "us-west-2c"}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "kube-system"},
            "spec": {"hostNetwork": true, "nodeName": "n3", "containers": []},
            "status": {"podIP": "192.168.2.9"}}]});
    let r = f.post("/__fake/seed", &seed);
    assert_eq!(r.body["seeded"], 2);
    let pods = f
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn3,status.podIP%3D192.168.2.9")
        .body;
    assert_eq!(names(&pods), ["p"]);
    let zone_c = f
        .get("/api/v1/nodes?labelSelector=topology.kubernetes.io/zone+in+(us-west-2c)")
        .body;
    assert_eq!(names(&zone_c), ["n3"]);
    let bad = f.post(
        "/__fake/seed",
        &json!({"objects": [{"kind": "Widget", "apiVersion": "v9"}]}),
    );
    assert_eq!(bad.code, 400);
}

#[test]
fn watch_streams_changes_after_resource_version() {
    use std::io::{Read, Write};
    let f = start();
    let from = rv(&f.get(ENI).body);
    let mut s = std::net::TcpStream::connect(f.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let req = format!(
        "GET {ENI}?watch=1&resourceVersion={from}&timeoutSeconds=10 HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    f.post(ENI, &eni("watched", "s"));
    f.delete(&format!("{ENI}/watched"));
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("\"DELETED\"") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let added = seen.find("{\"type\":\"ADDED\"");
    assert!(
        added.is_some_and(|a| a < seen.find("\"DELETED\"").unwrap()),
        "{seen}"
    );
    assert!(seen.contains("\"name\":\"watched\""));
}
